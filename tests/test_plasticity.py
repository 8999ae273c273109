"""Plasticity probes (robo_rl.plasticity): exact dormant ratio and FAU on hand-built layers, probing
that leaves training untouched (parameters, gradients, optimiser state, RNGs, hooks, and a whole
training run), ReDo resets, and the loop's plasticity.csv."""
from __future__ import annotations

import copy
import csv
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from robo_rl.agents import SACAgent, SACConfig
from robo_rl.nets import EnsembleLinear
from robo_rl.plasticity import (PlasticityConfig, dormant_ratio, dormant_scores, fraction_active,
                                module_dormant_ratio, network_dormant_ratio, probe, redo_)

from conftest import SMALL_TRAIN, compose_train_cfg

torch.set_num_threads(1)


def box(dim):
    return spaces.Box(-np.inf, np.inf, (dim,), np.float32)


def sac(obs_dim=3, action_dim=2, **overrides):
    values = dict(hidden_dims=(16, 16), batch_size=8, seed=0)
    values.update(overrides)
    return SACAgent(SACConfig.from_dict(values), box(obs_dim),
                    spaces.Box(-1.0, 1.0, (action_dim,), np.float32))


class Source:
    def __init__(self, obs_dim=3, action_dim=2, seed=0):
        self.g = torch.Generator().manual_seed(seed)
        self.obs_dim, self.action_dim = obs_dim, action_dim

    def sample(self, n):
        g = self.g
        return SimpleNamespace(obs=torch.randn(n, self.obs_dim, generator=g),
                               action=torch.rand(n, self.action_dim, generator=g) * 2 - 1,
                               reward=torch.randn(n, generator=g), discount=torch.full((n,), 0.99),
                               next_obs=torch.randn(n, self.obs_dim, generator=g))


# ---------------------------------------------------------------------------------------------
# Exact values


def test_dormant_scores_and_ratio_by_hand():
    # mean_b |h| = [1, 0, 2, 0.01]; layer mean = 3.01 / 4 = 0.7525
    h = torch.tensor([[1.0, 0.0, 2.0, 0.01], [-1.0, 0.0, -2.0, -0.01]])
    scores = dormant_scores(h)
    torch.testing.assert_close(scores, torch.tensor([[1 / 0.7525, 0.0, 2 / 0.7525, 0.01 / 0.7525]]))
    assert dormant_ratio([h], tau=0.025) == 2 / 4        # units 1 (0) and 3 (0.0133)
    assert dormant_ratio([h], tau=0.01) == 1 / 4         # only the silent one
    # pooled over layers: 2 of 4 plus 1 of 2 (|h| = [3, 0]: mean 1.5, scores [2, 0])
    assert dormant_ratio([h, torch.tensor([[3.0, 0.0]])], tau=0.025) == 3 / 6
    # an ensemble output N x B x U is scored per member: member 0 has one dormant unit of 2,
    # member 1 none (its scale is its own, not member 0's)
    ensemble = torch.tensor([[[1.0, 0.0]], [[0.001, 0.002]]])
    assert dormant_ratio([ensemble], tau=0.025) == 1 / 4
    assert dormant_ratio([torch.zeros(3, 5)], tau=0.025) == 1.0   # a silent layer is all dormant


def test_fraction_active_by_hand():
    post = torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.0, 2.0]])   # 3 of 6 entries > 0
    assert fraction_active([post]) == 0.5
    assert fraction_active([post, torch.ones(1, 2)]) == 5 / 8


def test_module_dormant_ratio_scores_hidden_units_after_their_relu():
    # Linear(2 -> 3) with known weights, then ReLU, then Linear(3 -> 1)
    layer = nn.Linear(2, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]]))
        layer.bias.zero_()
    net = nn.Sequential(layer, nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[2].weight.fill_(1.0)
        net[2].bias.zero_()
    x = torch.tensor([[1.0, 5.0], [2.0, -5.0]])
    # pre-activation h = [[1, 0, -1], [2, 0, -2]]: mean |h| = [1.5, 0, 1.5] -> unit 1 dormant;
    # after the ReLU [[1, 0, 0], [2, 0, 0]]: mean [1.5, 0, 0] -> units 1 and 2 dormant (unit 2 is
    # dead although |h| is large: what DrM's hook measures, its ReLU being in-place).
    # The output layer (no activation after it) scores its own output relu(x0) = [1, 2]: active.
    assert module_dormant_ratio(net, x, tau=0.025) == 2 / 4
    assert module_dormant_ratio(net, x, tau=0.025, after_activation=False) == 1 / 4
    assert not layer._forward_hooks and not net[1]._forward_hooks and not net[2]._forward_hooks
    # DrM's own computation on the same net (inplace ReLU overwrites the hooked Linear output)
    inplace = nn.Sequential(layer, nn.ReLU(inplace=True), net[2])
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append(o)) for m in inplace
               if isinstance(m, nn.Linear)]
    with torch.no_grad():
        inplace(x)
    for h in handles:
        h.remove()
    assert dormant_ratio(seen, 0.025) == 2 / 4


def test_dormant_sources_follow_relu_siblings_only():
    from robo_rl.plasticity import dormant_sources

    mlp = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), nn.LayerNorm(4), nn.ReLU(),
                        nn.Linear(4, 1), nn.Tanh())
    sources = dormant_sources(dict(mlp.named_modules()))
    assert sources == {"0": "1", "2": "2", "5": "5"}     # LayerNorm in between; Tanh is no ReLU


# ---------------------------------------------------------------------------------------------
# Probing a learner


def test_probe_matches_a_manual_count_and_groups_by_network():
    agent = sac()
    source = Source()
    agent.update(source, 0)
    batch = agent.last_batch
    report = probe(agent, batch, dormant_threshold=0.1)
    # by hand: the actor's Linear outputs and ReLU outputs on the batch
    linears = [m for m in agent.actor.modules() if isinstance(m, nn.Linear)]
    outputs, post = [], []
    x = agent.encoder(batch.obs)
    for module in agent.actor.net.net:
        x = module(x)
        (outputs if isinstance(module, nn.Linear) else post).append(x.detach())
    assert len(outputs) == len(linears) == 3
    # hidden Linears are scored after their ReLU, the output Linear on its own output
    scored = [post[0], post[1], outputs[2]]
    assert report.networks["actor"]["dormant_ratio"] == pytest.approx(dormant_ratio(scored, 0.1))
    pre = probe(agent, batch, dormant_threshold=0.1, dormant_after_activation=False)
    assert pre.networks["actor"]["dormant_ratio"] == pytest.approx(dormant_ratio(outputs, 0.1))
    assert report.networks["actor"]["fau"] == pytest.approx(fraction_active(post))
    assert set(report.networks) == {"actor", "critic"}
    metrics = report.metrics()
    assert {"actor_dormant_ratio", "actor_fau", "critic_dormant_ratio", "critic_fau"} <= set(metrics)
    assert 0.0 < metrics["critic_fau"] < 1.0


def test_probing_leaves_training_state_untouched():
    agent = sac()
    source = Source()
    agent.update(source, 0)
    agent.update(source, 1)
    # leave gradients in place to check the probe does not add any
    params = {f"{name}.{name_p}": p.detach().clone() for name, module in agent.networks().items()
              for name_p, p in module.named_parameters()}
    grads = {id(p): None if p.grad is None else p.grad.clone()
             for module in agent.networks().values() for p in module.parameters()}
    optim = copy.deepcopy({name: opt.state_dict() for name, opt in agent.named_optimizers().items()})
    generator, torch_rng = agent.generator.get_state(), torch.get_rng_state()
    probe(agent, agent.last_batch)
    network_dormant_ratio(agent, agent.last_batch, "actor", 0.025)
    for name, module in agent.networks().items():
        for name_p, p in module.named_parameters():
            assert torch.equal(p, params[f"{name}.{name_p}"])
            before = grads[id(p)]
            assert (p.grad is None) == (before is None) and (before is None or torch.equal(p.grad, before))
    after = {name: opt.state_dict() for name, opt in agent.named_optimizers().items()}
    for name in optim:
        for key, state in optim[name]["state"].items():
            for field, value in state.items():
                assert torch.equal(torch.as_tensor(after[name]["state"][key][field]), torch.as_tensor(value))
    assert torch.equal(agent.generator.get_state(), generator)
    assert torch.equal(torch.get_rng_state(), torch_rng)
    assert all(not m._forward_hooks for m in agent.probes().values())


def test_a_run_with_probes_is_the_same_run_as_one_without(tmp_path):
    """Ground truth: two real training runs (CLI config path) differ only in plasticity.every;
    their final agents are identical and only the probed run wrote plasticity.csv."""
    from robo_rl.checkpoint import load_checkpoint
    from robo_rl.loops.online import train

    results = {}
    for every in (0, 25):
        cfg = compose_train_cfg(SMALL_TRAIN + ["train.steps=200", f"plasticity.every={every}"])
        run = tmp_path / f"every{every}"
        results[every] = train(cfg, run)
    off = load_checkpoint(results[0].checkpoint)["agent"]
    on = load_checkpoint(results[25].checkpoint)["agent"]
    for key in ("actor", "critic", "encoder"):
        for name, value in off[key].items():
            assert torch.equal(value, on[key][name]), f"{key}.{name} differs"
    assert not (tmp_path / "every0" / "plasticity.csv").exists()
    with (tmp_path / "every25" / "plasticity.csv").open() as f:
        rows = list(csv.DictReader(f))
    # learning starts after seed_steps=100: probes at 125, 150, 175, 200
    assert [int(r["step"]) for r in rows] == [125, 150, 175, 200]
    assert all(0.0 <= float(r["critic_fau"]) <= 1.0 and 0.0 <= float(r["actor_dormant_ratio"]) <= 1.0
               for r in rows)


def test_plasticity_config_rejects_bad_values():
    with pytest.raises(ValueError, match="plasticity.every"):
        PlasticityConfig(every=-1)
    with pytest.raises(ValueError, match="dormant_threshold"):
        PlasticityConfig(dormant_threshold=1.5)


# ---------------------------------------------------------------------------------------------
# ReDo


def test_redo_reinitialises_dormant_units_and_silences_their_outputs():
    agent = sac(hidden_dims=(8, 8))
    source = Source()
    agent.update(source, 0)
    first = agent.critic.q.layers[0]                 # EnsembleLinear: 2 x in x 8
    second = agent.critic.q.layers[2]
    with torch.no_grad():                            # kill unit 3 of member 1: output always 0
        first.weight[1, :, 3] = 0
        first.bias[1, 0, 3] = 0
    agent.update(source, 1)                          # Adam moments now exist for every entry
    with torch.no_grad():
        first.weight[1, :, 3] = 0
        first.bias[1, 0, 3] = 0
    before_first, before_second = first.weight.detach().clone(), second.weight.detach().clone()
    # pre-activation scores with tau 0: exactly the silenced unit (post-ReLU would add dead ones)
    reset = redo_(agent, "critic", agent.last_batch, tau=0.0, after_activation=False)
    assert reset == 1
    assert first.weight[1, :, 3].abs().sum() > 0                    # fresh incoming weights
    assert torch.all(second.weight[1, 3, :] == 0)                   # outgoing weights zeroed
    assert torch.equal(second.weight[0], before_second[0])          # other member untouched
    untouched = torch.ones_like(first.weight, dtype=torch.bool)
    untouched[1, :, 3] = False
    assert torch.equal(first.weight[untouched], before_first[untouched])
    state = agent.critic_optimizer.state[first.weight]
    assert torch.all(state["exp_avg"][1, :, 3] == 0) and torch.all(state["exp_avg_sq"][1, :, 3] == 0)
    assert torch.count_nonzero(state["exp_avg_sq"][0]) > 0           # other moments kept


def test_redo_on_a_plain_layer_feeding_an_ensemble_zeroes_every_member():
    """A pixel critic: the trunk Linear (plain) feeds both ensemble members."""
    obs_space = spaces.Box(0, 255, (3, 16, 16), np.uint8)
    agent = SACAgent(SACConfig.from_dict(dict(hidden_dims=(8,), batch_size=4, seed=0,
                                              encoder={"feature_dim": 6, "num_layers": 1})),
                     obs_space, spaces.Box(-1.0, 1.0, (2,), np.float32))
    projection = agent.critic.trunk.projection[0]
    with torch.no_grad():
        projection.weight[2] = 0
        projection.bias[2] = 0
    batch = SimpleNamespace(obs=torch.randint(0, 255, (4, 3, 16, 16), dtype=torch.uint8),
                            action=torch.zeros(4, 2))
    # LayerNorm + Tanh follow the projection; dormancy is scored on the Linear output itself
    redo_(agent, "critic", batch, tau=0.0)
    assert projection.weight[2].abs().sum() > 0
    first = agent.critic.q.layers[0]
    assert torch.all(first.weight[:, 2, :] == 0)


def test_redo_leaves_no_output_of_a_reset_unit_live():
    """Post-ReLU scoring finds dead units in consecutive layers; after ReDo every reset unit's
    outgoing weights are zero, also where the next layer re-drew units of its own."""
    agent = sac(hidden_dims=(8, 8))
    source = Source()
    agent.update(source, 0)
    layers = agent.critic.q.layers
    with torch.no_grad():
        layers[0].weight[:, :, :4] = 0      # units 0-3 of layer 0 dead in both members
        layers[0].bias[:, :, :4] = -1.0
        layers[2].weight[:, :, :2] = 0      # units 0-1 of layer 2 dead too
        layers[2].bias[:, :, :2] = -1.0
    assert redo_(agent, "critic", agent.last_batch, tau=0.0) >= 12
    assert torch.all(layers[2].weight[:, :4, :] == 0)      # outputs of layer-0 units 0-3
    assert torch.all(layers[4].weight[:, :2, :] == 0)      # outputs of layer-2 units 0-1
    assert layers[2].weight[:, 4:, :2].abs().sum() > 0     # layer-2 units 0-1 re-drawn (live inputs)
