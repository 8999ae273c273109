"""DrQ-v2 and DrM (robo_rl/agents/drqv2.py, drm.py): schedules and formulas at chosen values,
the perturbation against alpha*old + (1-alpha)*fresh, the blended target on a hand-made batch,
short pixel updates, checkpoint/resume of DrM's schedule state, and the config path."""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from robo_rl.agents import DrMAgent, DrQv2Agent, agent_config, make_agent
from robo_rl.agents.drm import PERTURBED_NETWORKS, expectile_loss
from robo_rl.nets import EnsembleLinear, random_shift
from robo_rl.nets.init import _reset_layer_
from robo_rl.plasticity import module_dormant_ratio

from conftest import compose_train_cfg

torch.set_num_threads(1)

PIXELS = spaces.Box(0, 255, (6, 20, 20), np.uint8)   # 2 stacked RGB frames, 20x20
ACTIONS = spaces.Box(-1.0, 1.0, (2,), np.float32)
SMALL = dict(hidden_dims=(16, 16), batch_size=8, seed=0, encoder={"feature_dim": 8, "num_layers": 2})


def agent(name="drm", obs_space=PIXELS, **overrides):
    return make_agent({"name": name, **SMALL, **overrides}, obs_space, ACTIONS)


class PixelSource:
    def __init__(self, shape=PIXELS.shape, seed=0):
        self.g, self.shape = torch.Generator().manual_seed(seed), shape

    def sample(self, n):
        g = self.g
        return SimpleNamespace(obs=torch.randint(0, 256, (n, *self.shape), generator=g, dtype=torch.uint8),
                               action=torch.rand(n, 2, generator=g) * 2 - 1,
                               reward=torch.randn(n, generator=g), discount=torch.full((n,), 0.97),
                               next_obs=torch.randint(0, 256, (n, *self.shape), generator=g,
                                                      dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------
# Formulas at chosen values


def test_drqv2_std_schedule_is_linear_then_flat():
    learner = agent("drqv2", std_start=1.0, std_end=0.1, std_steps=1000)
    assert learner.exploration_std(0) == pytest.approx(1.0)
    assert learner.exploration_std(500) == pytest.approx(0.55)
    assert learner.exploration_std(1000) == pytest.approx(0.1)
    assert learner.exploration_std(5000) == pytest.approx(0.1)


def test_drm_awaken_exploration_sigma_and_t_awake():
    learner = agent(awaken_after_steps=100, std_steps=1000, target_dormant_ratio=0.2,
                    dormant_temperature=10.0)
    learner.dormant_ratio = 0.5
    assert learner.exploration_std(50) == pytest.approx(1 / (1 + math.exp(-10 * 0.3)))  # sigma_dorm
    source = PixelSource()
    # beta stays high: no awakening; low beta before awaken_after_steps: no awakening either
    with torch.no_grad():  # a silent actor: every Linear output 0 -> beta = 1
        for layer in learner.actor.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
    learner.update(source, 150)
    assert learner.dormant_ratio == 1.0 and learner.awaken_step is None
    fresh = agent(awaken_after_steps=100, std_steps=1000)
    fresh.update(source, 50)                    # beta low (fresh orthogonal nets) but t <= 100
    assert fresh.dormant_ratio < 0.2 and fresh.awaken_step is None
    fresh.update(source, 120)
    assert fresh.awaken_step == 120
    fresh.update(source, 130)
    assert fresh.awaken_step == 120             # recorded once
    # after t_awake: max(sigma_dorm, linear(t - t_awake))
    fresh.dormant_ratio = 0.0
    dorm = 1 / (1 + math.exp(-10 * (0.0 - 0.2)))                 # 0.119
    assert fresh.exploration_std(120 + 500) == pytest.approx(max(dorm, 0.55))
    assert fresh.exploration_std(120 + 5000) == pytest.approx(max(dorm, 0.1))


@pytest.mark.parametrize("beta, lam, alpha", [
    (0.0, 0.6 / (1 + math.exp(-10.0)), 1.0),       # 1 - 0 = 1, within [0.2, 1.0]
    (0.2, 0.3, 0.6),                               # lambda = lambda_hat / 2 at beta = target
    (0.3, 0.6 / (1 + math.exp(5.0)), 0.4),
    (0.5, 0.6 / (1 + math.exp(15.0)), 0.2),        # 1 - 2*0.5 = 0 -> alpha_min
])
def test_drm_lambda_and_perturb_alpha_formulas(beta, lam, alpha):
    learner = agent()
    learner.dormant_ratio = beta
    assert learner.exploit_lambda() == pytest.approx(lam)
    assert learner.perturb_alpha() == pytest.approx(alpha)
    capped = agent(perturb_alpha_max=0.6)
    capped.dormant_ratio = beta
    assert capped.perturb_alpha() == pytest.approx(min(alpha, 0.6))


def test_expectile_loss_by_hand():
    value, target = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 1.0, 2.0])
    # errors V - Q = [1, -1, 0]: weights [1 - 0.9, 0.9, .] -> mean(0.1, 0.9, 0) = 1/3
    assert expectile_loss(value, target, 0.9).item() == pytest.approx(1.0 / 3.0)


class Constant(nn.Module):
    def __init__(self, values):
        super().__init__()
        self.values = values

    def forward(self, *args):
        return self.values


def test_drm_blended_target_on_a_hand_made_batch():
    learner = agent()
    learner.dormant_ratio = 0.2                         # lambda = 0.6 / 2 = 0.3
    learner.critic_target = Constant(torch.tensor([[1.0, 4.0], [2.0, 3.0]]))   # min Qbar = [1, 3]
    learner.value = Constant(torch.tensor([10.0, -10.0]))
    reward, discount = torch.tensor([0.5, 1.0]), torch.tensor([0.9, 0.0])
    target = learner.bootstrap_target(reward, discount, torch.zeros(2, 4), torch.zeros(2, 2))
    # y = r + d (0.3 V + 0.7 min Q): [0.5 + 0.9 * (3 + 0.7)], [1 + 0]
    torch.testing.assert_close(target, torch.tensor([0.5 + 0.9 * 3.7, 1.0]))
    plain = agent("drqv2")
    plain.critic_target = Constant(torch.tensor([[1.0, 4.0], [2.0, 3.0]]))
    torch.testing.assert_close(plain.bootstrap_target(reward, discount, None, None),
                               torch.tensor([0.5 + 0.9 * 1.0, 1.0]))


# ---------------------------------------------------------------------------------------------
# Perturbation


def _draw_fresh(old, fresh, generator):
    for name in PERTURBED_NETWORKS:
        fresh[name] = copy.deepcopy(old[name])
        for layer in fresh[name].modules():
            if isinstance(layer, (nn.Linear, EnsembleLinear)):
                _reset_layer_(layer, True, generator)


def test_perturbation_is_alpha_old_plus_one_minus_alpha_fresh():
    learner = agent(perturb_every=100)
    source = PixelSource()
    learner.update(source, 10)
    learner.dormant_ratio = 0.3                           # alpha = 1 - 0.6 = 0.4
    old = {name: copy.deepcopy(learner.networks()[name]) for name in learner.networks()}
    generator = learner.generator.get_state()
    # the fresh draws, reproduced on copies from the same generator state and network order
    replay_gen = torch.Generator().set_state(generator)
    fresh = {}
    with torch.no_grad():
        _draw_fresh(old, fresh, replay_gen)
    alpha = learner.perturb(step=100)
    assert alpha == pytest.approx(0.4) and learner.last_perturb_step == 100
    for name in PERTURBED_NETWORKS:
        new_mods = dict(learner.networks()[name].named_modules())
        for path, layer in old[name].named_modules():
            for pname, before in layer.named_parameters(recurse=False):
                after = getattr(new_mods[path], pname)
                if isinstance(layer, (nn.Linear, EnsembleLinear)):
                    expected = 0.4 * before + 0.6 * getattr(dict(fresh[name].named_modules())[path], pname)
                    torch.testing.assert_close(after, expected)
                else:                                          # LayerNorm affine untouched
                    assert torch.equal(after, before), f"{name}.{path}.{pname} changed"
    for before, after in zip(old["encoder"].parameters(), learner.encoder.parameters()):
        assert torch.equal(before, after)                     # conv encoder untouched
    assert all(not opt.state for opt in learner.named_optimizers().values())   # Adam state reset
    # fresh weights are orthogonal draws (not zeros): perturbed weights moved
    assert not torch.equal(old["actor"].net.net[0].weight, learner.actor.net.net[0].weight)


def test_perturbation_fires_every_perturb_every_agent_steps_in_update():
    learner = agent(perturb_every=100)
    source = PixelSource()
    fired = [step for step in (11, 57, 99, 101, 150, 199, 203, 333)
             if "perturb_alpha" in learner.update(source, step)]
    assert fired == [101, 203, 333]     # first once 100 steps passed, then >= 100 after the last
    assert learner.last_perturb_step == 333


# ---------------------------------------------------------------------------------------------
# Augmentation, updates, checkpoints


def test_random_shift_keeps_shape_and_zero_shift_is_identity():
    images = torch.randint(0, 256, (5, 6, 20, 20), dtype=torch.uint8)
    assert random_shift(images, 4, torch.Generator().manual_seed(0)).shape == images.shape
    assert torch.equal(random_shift(images, 0, torch.Generator().manual_seed(0)), images)


@pytest.mark.parametrize("name", ["drqv2", "drm"])
def test_short_pixel_updates_change_every_trained_network(name):
    learner = agent(name)
    before = {key: [p.detach().clone() for p in module.parameters()]
              for key, module in learner.networks().items()}
    source = PixelSource()
    for step in range(3):
        metrics = learner.update(source, 100 + step)
    assert all(math.isfinite(v) for v in metrics.values())
    trained = ["encoder", "actor", "critic", "critic_target"] + (["value"] if name == "drm" else [])
    for key in trained:
        assert any(not torch.equal(a, b) for a, b in zip(before[key], learner.networks()[key].parameters())), key
    action = learner.act(np.zeros(PIXELS.shape, np.uint8), step=5)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)
    batch = learner.act(np.zeros((3, *PIXELS.shape), np.uint8), eval_mode=True)
    assert batch.shape == (3, 2)
    with pytest.raises(ValueError, match="pass step="):
        learner.act(np.zeros(PIXELS.shape, np.uint8))


def test_encoder_gets_gradients_from_the_critic_only():
    learner = agent("drqv2")
    encoder_params = list(learner.encoder.parameters())
    assert all(id(p) not in {id(q) for g in learner.actor_optimizer.param_groups for q in g["params"]}
               for p in encoder_params)
    features = learner.encode(PixelSource().sample(4).obs)
    learner.update_actor(features.detach(), 0)
    assert all(p.grad is None for p in encoder_params)


def test_drm_beta_is_the_actor_dormant_ratio_of_the_update_features():
    learner = agent()
    source = PixelSource()
    metrics = learner.update(source, 10)
    assert metrics["actor_dormant_ratio"] == pytest.approx(learner.dormant_ratio)
    features = learner.encode(learner.last_batch.obs)
    assert 0.0 <= module_dormant_ratio(learner.actor, features, 0.025) <= 1.0


def test_checkpoint_resume_reproduces_drm_schedule_state_and_updates():
    learner = agent(perturb_every=20, awaken_after_steps=5)
    source = PixelSource(seed=1)
    for step in range(0, 30, 3):
        learner.update(source, step)
    assert learner.awaken_step is not None and learner.last_perturb_step == 21
    state = copy.deepcopy(learner.state_dict())
    resumed = agent(perturb_every=20, awaken_after_steps=5, seed=99)
    resumed.load_state_dict(state)
    assert (resumed.awaken_step, resumed.last_perturb_step, resumed.dormant_ratio) == (
        learner.awaken_step, learner.last_perturb_step, learner.dormant_ratio)
    twin_source = copy.deepcopy(source)
    for step in (42, 45):       # 42: a perturbation on both
        a, b = learner.update(source, step), resumed.update(twin_source, step)
        assert a == b
    for x, y in zip(learner.actor.parameters(), resumed.actor.parameters()):
        assert torch.equal(x, y)
    with pytest.raises(KeyError, match="networks"):
        agent("drqv2").load_state_dict(state)          # DrM's value net: not a DrQ-v2 checkpoint


def test_state_observations_use_the_drqv2_trunk():
    learner = agent("drm", obs_space=spaces.Box(-np.inf, np.inf, (5,), np.float32))
    trunk = learner.actor.trunk.projection
    assert isinstance(trunk[0], nn.Linear) and isinstance(trunk[1], nn.LayerNorm)
    assert trunk[0].in_features == 5 and trunk[0].out_features == 8
    plain = agent("drqv2", obs_space=spaces.Box(-np.inf, np.inf, (5,), np.float32), state_trunk=False)
    assert plain.actor.trunk.projection is None


# ---------------------------------------------------------------------------------------------
# Configs


def test_presets_and_agent_configs_reach_the_objects():
    hard = agent_config({"name": "drm_hard"})
    assert (hard.perturb_alpha_max, hard.lr, hard.encoder.feature_dim) == (0.6, 8e-5, 100)
    manipulator = agent_config({"name": "drm_manipulator", "perturb_alpha_max": 0.8})
    assert (manipulator.perturb_alpha_max, manipulator.lr) == (0.8, 8e-5)
    cfg = compose_train_cfg(["agent=drm", "task=dmc/cheetah_run", "preset=pixels_cpu"])
    assert (cfg.task.obs_type, cfg.task.action_repeat, cfg.task.frame_stack) == ("pixels", 2, 3)
    assert cfg.train.replay_ratio == 0.5 and cfg.train.seed_steps == 2000
    assert tuple(cfg.agent.hidden_dims) == (256, 256) and cfg.agent.name == "drm"
    gpu = compose_train_cfg(["agent=drqv2", "preset=pixels_gpu", "train.steps=10"])
    assert gpu.task.image_size == 84 and gpu.train.steps == 10 and tuple(gpu.agent.hidden_dims) == (1024, 1024)
    learner = make_agent(cfg.agent, PIXELS, ACTIONS)
    assert isinstance(learner, DrMAgent) and isinstance(learner, DrQv2Agent)
    assert learner.actor.net.net[0].out_features == 256


def test_bad_drm_values_and_a_constraint_are_clear_errors():
    with pytest.raises(ValueError, match="perturb_alpha_min"):
        agent_config({"name": "drm", "perturb_alpha_min": 0.9, "perturb_alpha_max": 0.5})
    with pytest.raises(ValueError, match="expectile"):
        agent_config({"name": "drm", "expectile": 1.0})
    with pytest.raises(ValueError, match="constraint"):
        make_agent({"name": "drqv2"}, PIXELS, ACTIONS, constraint={"name": "energy"})
    from robo_rl.config_schema import ConfigError, check_train_config
    with pytest.raises(ConfigError, match="agent=drm takes no constraint"):
        check_train_config(compose_train_cfg(["agent=drm", "task=arm/reach", "constraint=energy"]))
