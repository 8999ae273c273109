"""Lagrangian constraint (passivity-aware SAC): dual ascent and cost-critic math on hand cases,
a state round trip, config errors, and a short learning check on a 1-step problem."""
from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium import spaces

from robo_rl.agents import make_agent
from robo_rl.agents.constraint import (LagrangianConfig, LagrangianConstraint,
                                       budget_from_episode_budget, constraint_config)
from robo_rl.agents.sac import SACConfig
from robo_rl.nets import EnsembleLinear

torch.set_num_threads(1)

STATE_DIM, ACTION_DIM = 3, 2


def make_constraint(agent_overrides=None, **overrides) -> LagrangianConstraint:
    agent_cfg = SACConfig(hidden_dims=(8,), **(agent_overrides or {}))
    values = dict(num_critics=2, budget=1.0, multiplier_lr=0.1, init_multiplier=0.5, cost_gamma=None)
    values.update(overrides)
    return LagrangianConstraint(LagrangianConfig(**values), agent_cfg, pixel_dim=0,
                                state_dim=STATE_DIM, action_dim=ACTION_DIM)


def set_constant_cost_q(constraint: LagrangianConstraint, member_values) -> None:
    """Zero every weight so member i outputs member_values[i] for any input (critic and target)."""
    layers = [m for m in constraint.critic.modules() if isinstance(m, EnsembleLinear)]
    with torch.no_grad():
        for layer in layers:
            layer.weight.zero_()
            layer.bias.zero_()
        layers[-1].bias.copy_(torch.tensor(member_values, dtype=torch.float32).view(-1, 1, 1))
    constraint.critic_target.load_state_dict(constraint.critic.state_dict())


def random_inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, STATE_DIM, generator=g), torch.rand(batch, ACTION_DIM, generator=g) * 2 - 1)


# ---------------------------------------------------------------------------- dual ascent
def test_multiplier_rises_above_budget_then_falls_to_zero_and_stays():
    constraint = make_constraint()  # lambda 0.5, lr 0.1, budget 1
    metrics = constraint.update_multiplier(torch.tensor(3.0))
    assert constraint.multiplier.item() == pytest.approx(0.5 + 0.1 * (3.0 - 1.0))
    assert metrics["lambda"].item() == pytest.approx(0.7) and metrics["cost_q"].item() == 3.0
    # Below budget by 1: lambda falls 0.1 per step, 0.7 -> 0 after 7 steps, then stays at 0.
    history = [constraint.update_multiplier(torch.tensor(0.0))["lambda"].item() for _ in range(10)]
    assert history[:7] == pytest.approx([0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0], abs=1e-6)
    assert history[7:] == [0.0, 0.0, 0.0]
    constraint.update_multiplier(torch.tensor(1.0))  # exactly at the budget: no change
    assert constraint.multiplier.item() == 0.0
    constraint.update_multiplier(torch.tensor(1.5))
    assert constraint.multiplier.item() == pytest.approx(0.05)


def test_episode_budget_conversion():
    # 2 J per 100-step episode at gamma 0.99: 0.02 J per step, worth 0.02 / 0.01 = 2 J to go.
    assert budget_from_episode_budget(2.0, 100, 0.99) == pytest.approx(2.0)
    assert budget_from_episode_budget(0.5, 1, 0.0) == 0.5
    with pytest.raises(ValueError, match="gamma < 1"):
        budget_from_episode_budget(1.0, 10, 1.0)


# ---------------------------------------------------------------------------- cost critic
@pytest.mark.parametrize("reduction, next_q", [("mean", 3.0), ("max", 4.0)])
def test_cost_target_loss_and_penalty_on_a_hand_set_critic(reduction, next_q):
    constraint = make_constraint(q_reduction=reduction)
    set_constant_cost_q(constraint, [2.0, 4.0])
    features, action = random_inputs()
    cost, discount = torch.tensor([1.0, 0.5]), torch.tensor([0.5, 0.0])  # 2nd row terminated
    target = constraint.target(cost, discount, features, action)
    assert torch.allclose(target, torch.tensor([1.0 + 0.5 * next_q, 0.5]))

    penalty, cost_q = constraint.actor_penalty(features, action)  # lambda 0.5
    assert torch.allclose(penalty, torch.full((2,), 0.5 * next_q)) and cost_q.item() == next_q

    # Loss = sum over members of the mean squared error to the target.
    expected = sum(((q - target) ** 2).mean() for q in (2.0, 4.0))
    bias_before = constraint.critic_target.q.layers[-1].bias.detach().clone()
    metrics = constraint.update_critic(features, action, cost, discount, features, action)
    assert metrics["cost_loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    # Polyak: the target bias moved tau of the way to the stepped critic's.
    bias_after = constraint.critic.q.layers[-1].bias.detach()
    tau = constraint.tau
    assert torch.allclose(constraint.critic_target.q.layers[-1].bias,
                          (1 - tau) * bias_before + tau * bias_after)


def test_cost_gamma_replaces_the_replay_discount_for_one_step_returns():
    constraint = make_constraint(cost_gamma=0.9)
    set_constant_cost_q(constraint, [2.0, 4.0])
    features, action = random_inputs()
    target = constraint.target(torch.tensor([1.0, 0.5]), torch.tensor([0.99, 0.0]), features, action)
    assert torch.allclose(target, torch.tensor([1.0 + 0.9 * 3.0, 0.5]))
    with pytest.raises(ValueError, match="n_step=1"):
        make_constraint(agent_overrides=dict(n_step=3), cost_gamma=0.9)


def test_update_without_costs_names_the_replay_fix():
    constraint = make_constraint()
    features, action = random_inputs()
    with pytest.raises(ValueError, match="track_cost=True"):
        constraint.update_critic(features, action, None, torch.ones(2), features, action)


# ---------------------------------------------------------------------------- state and config
def test_state_round_trip_continues_identically():
    def train(constraint, steps, seed):
        for k in range(steps):
            features, action = random_inputs(batch=16, seed=seed + k)
            cost = action.abs().sum(-1)
            constraint.update_critic(features, action, cost, torch.full((16,), 0.9), features, action)
            constraint.update_multiplier(constraint.actor_penalty(features, action)[1])

    original = make_constraint(budget=0.0)  # every cost is over budget: lambda keeps rising
    train(original, 5, seed=0)
    copy = make_constraint(budget=0.0, init_multiplier=0.0)
    buffer = io.BytesIO()  # through bytes, as a checkpoint: no tensor shared with the original
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    copy.load_state_dict(torch.load(buffer))
    assert copy.multiplier.item() == original.multiplier.item()
    train(original, 3, seed=10)
    train(copy, 3, seed=10)
    for a, b in zip(original.critic.parameters(), copy.critic.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(original.critic_target.parameters(), copy.critic_target.parameters()):
        assert torch.equal(a, b)
    assert copy.multiplier.item() == original.multiplier.item() > 0
    with pytest.raises(KeyError, match="multiplier"):
        copy.load_state_dict({"critic": {}, "critic_target": {}, "optimizer": {}})


def test_config_from_hydra_group_and_bad_values():
    assert constraint_config({"name": "none"}) is None
    assert constraint_config(None) is None
    cfg = constraint_config({"name": "energy", "budget": 3.0, "hidden_dims": [16, 16]})
    assert cfg == LagrangianConfig(budget=3.0, hidden_dims=(16, 16))
    with pytest.raises(ValueError, match="unknown constraint name"):
        constraint_config({"name": "energi"})
    with pytest.raises(ValueError, match=r"unknown constraint config key\(s\) \['budgte'\]"):
        constraint_config({"name": "energy", "budgte": 1.0})
    with pytest.raises(ValueError, match="must be >= 0"):
        make_constraint(multiplier_lr=-1.0)
    with pytest.raises(ValueError, match="q_reduction"):
        make_constraint(q_reduction="min")


# ---------------------------------------------------------------------------- SAC integration
class CostBandit:
    """One-step problem (discount 0): reward a (prefers a = 1), cost a^2 (grows with the action),
    uniformly random logged actions and observations."""

    def __init__(self, seed=0):
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch_size):
        g = self.generator
        action = torch.rand(batch_size, 1, generator=g) * 2 - 1
        return SimpleNamespace(obs=torch.randn(batch_size, 2, generator=g), action=action,
                               reward=action[:, 0], cost=action[:, 0] ** 2,
                               discount=torch.zeros(batch_size),
                               next_obs=torch.randn(batch_size, 2, generator=g))


BANDIT_BUDGET = 0.25   # E[a^2] <= 0.25: the Lagrangian optimum of a - lambda a^2 is a = 0.5
BANDIT_UPDATES = 600


def bandit_action(constraint):
    torch.manual_seed(0)
    agent_cfg = dict(name="sac", hidden_dims=[32, 32], batch_size=64, lr=3e-3, init_temperature=0.05,
                     seed=0)
    agent = make_agent(agent_cfg, spaces.Box(-np.inf, np.inf, (2,), np.float32),
                       spaces.Box(-1.0, 1.0, (1,), np.float32), constraint=constraint)
    source = CostBandit()
    for step in range(BANDIT_UPDATES):
        metrics = agent.update(source, step)
    obs = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    return agent.act(obs, eval_mode=True)[:, 0], metrics


def test_constrained_sac_respects_the_cost_budget_and_plain_sac_does_not():
    plain_action, plain_metrics = bandit_action(constraint={"name": "none"})
    assert "lambda" not in plain_metrics
    assert np.all(plain_action ** 2 > 0.6)                 # unconstrained: a near 1, cost ~1
    constrained = {"name": "energy", "budget": BANDIT_BUDGET, "multiplier_lr": 0.05}
    action, metrics = bandit_action(constraint=constrained)
    assert np.all(action ** 2 <= BANDIT_BUDGET + 0.1)      # within the budget (up to dual jitter)
    assert np.all(action > 0.25)                            # and still after the reward
    # lambda settles near the hand-derived multiplier: d/da (a - lambda a^2) = 0 at a = 0.5 -> 1.
    assert 0.5 < metrics["lambda"] < 2.0 and {"cost_q", "cost_loss"} <= set(metrics)


def test_constrained_agent_checkpoint_round_trip_and_missing_cost_error():
    constraint = {"name": "energy", "budget": 0.0}
    make = lambda: make_agent(dict(name="sac", hidden_dims=[16], batch_size=8, seed=0),
                              spaces.Box(-np.inf, np.inf, (2,), np.float32),
                              spaces.Box(-1.0, 1.0, (1,), np.float32), constraint=constraint)
    agent, source = make(), CostBandit()
    for step in range(3):
        agent.update(source, step)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    restored = make()
    restored.load_state_dict(torch.load(buffer))
    assert restored.constraint.multiplier.item() == agent.constraint.multiplier.item() > 0
    source_a, source_b = CostBandit(seed=5), CostBandit(seed=5)
    assert agent.update(source_a, 3) == restored.update(source_b, 3)

    class NoCost(CostBandit):
        def sample(self, batch_size):
            batch = super().sample(batch_size)
            batch.cost = None
            return batch

    with pytest.raises(ValueError, match="track_cost=True"):
        agent.update(NoCost(), 4)


def test_cost_critic_reuses_the_reward_targets_next_action():
    # One learner update runs the actor once per critic step for the targets and once for its
    # own loss, with or without a constraint: the cost target takes the reward target's a'.
    def actor_forwards(constraint):
        agent = make_agent(dict(name="sac", hidden_dims=[16], batch_size=8,
                                critic_steps_per_update=3, seed=0),
                           spaces.Box(-np.inf, np.inf, (2,), np.float32),
                           spaces.Box(-1.0, 1.0, (1,), np.float32), constraint=constraint)
        calls, sampled, received = [], [], []
        agent.actor.register_forward_hook(lambda *args: calls.append(1))
        target_value = agent.critic_target_value

        def record_sample(*args):
            target, next_action = target_value(*args)
            sampled.append(next_action)
            return target, next_action

        agent.critic_target_value = record_sample
        if agent.constraint is not None:
            update_critic = agent.constraint.update_critic

            def record_cost_update(*args):
                received.append(args[-1])
                return update_critic(*args)

            agent.constraint.update_critic = record_cost_update
        agent.update(CostBandit(), 0)
        return len(calls), sampled, received

    plain_calls, _, _ = actor_forwards({"name": "none"})
    constrained_calls, sampled, received = actor_forwards({"name": "energy"})
    assert plain_calls == constrained_calls == 3 + 1
    assert len(received) == 3 and all(got is want for got, want in zip(received, sampled))


def test_hydra_composes_constraint_energy():
    from hydra import compose, initialize_config_dir

    from robo_rl.cli import config_dir

    try:  # the YAMLs compose on top of schemas registered in Hydra's ConfigStore
        from robo_rl.config_schema import register_configs
        register_configs()
    except ImportError:
        pass
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        energy = compose(config_name="config", overrides=["agent=sac", "constraint=energy",
                                                          "constraint.budget=3.5"])
        plain = compose(config_name="config", overrides=["agent=sac"])
    assert constraint_config(energy.constraint) == LagrangianConfig(budget=3.5)
    assert constraint_config(plain.constraint) is None
