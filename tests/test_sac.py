"""SAC/RLPD agent and the shared networks: exact math on hand-set cases, invariants, a save/load
round trip, the pixel path, and a short learning check that a broken agent fails."""
from __future__ import annotations

import copy
import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces

from robo_rl.agents import AGENTS, SACAgent, SACConfig, make_agent, rlpd_config
from robo_rl.agents.common import critic_step, or_default
from robo_rl.agents.sac import (sample_tanh_gaussian, split_minibatches,
                                tanh_gaussian_log_prob)
from robo_rl.nets import MLP, EnsembleLinear, EnsembleMLP, PixelEncoder, random_shift

torch.set_num_threads(1)


def box(dim):
    return spaces.Box(-np.inf, np.inf, (dim,), np.float32)


def action_box(dim):
    return spaces.Box(-1.0, 1.0, (dim,), np.float32)


class FakeSource:
    """Deterministic batch source: obs drawn by ``make_obs``, reward by ``reward_fn``."""

    def __init__(self, make_obs, action_dim, seed=0, reward_fn=None, discount=0.99):
        self.generator = torch.Generator().manual_seed(seed)
        self.make_obs, self.action_dim = make_obs, action_dim
        self.reward_fn, self.discount = reward_fn, discount

    def sample(self, batch_size):
        g = self.generator
        obs, next_obs = self.make_obs(batch_size, g), self.make_obs(batch_size, g)
        action = torch.rand(batch_size, self.action_dim, generator=g) * 2 - 1
        reward = (self.reward_fn(action) if self.reward_fn is not None
                  else torch.randn(batch_size, generator=g))
        return SimpleNamespace(obs=obs, action=action, reward=reward,
                               discount=torch.full((batch_size,), self.discount),
                               next_obs=next_obs)


def state_obs(dim):
    return lambda n, g: torch.randn(n, dim, generator=g)


def small_agent(obs_dim=3, action_dim=2, **overrides):
    values = dict(hidden_dims=(16, 16), batch_size=8, seed=0)
    values.update(overrides)
    return SACAgent(SACConfig.from_dict(values), box(obs_dim), action_box(action_dim))


# ---- networks -------------------------------------------------------------------------------

@pytest.mark.parametrize("layer_norm", [False, True])
def test_ensemble_mlp_equals_separate_mlps(layer_norm):
    torch.manual_seed(0)
    members, in_dim, hidden, out_dim = 3, 5, (7, 4), 2
    ensemble = EnsembleMLP(members, in_dim, hidden, out_dim, layer_norm=layer_norm)
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        for p in ensemble.parameters():
            p.add_(0.1 * torch.randn_like(p))
    mlps = []
    for i in range(members):
        mlp = MLP(in_dim, hidden, out_dim, layer_norm=layer_norm)
        linears = [m for m in mlp.net if isinstance(m, torch.nn.Linear)]
        norms = [m for m in mlp.net if isinstance(m, torch.nn.LayerNorm)]
        ens_linears = [m for m in ensemble.layers if isinstance(m, EnsembleLinear)]
        ens_norms = [m for m in ensemble.layers if not isinstance(m, EnsembleLinear)
                     and hasattr(m, "weight")]
        with torch.no_grad():
            for lin, ens in zip(linears, ens_linears):
                lin.weight.copy_(ens.weight[i].T)
                lin.bias.copy_(ens.bias[i, 0])
            for norm, ens in zip(norms, ens_norms):
                norm.weight.copy_(ens.weight[i, 0])
                norm.bias.copy_(ens.bias[i, 0])
        mlps.append(mlp)
    shared = torch.randn(6, in_dim)
    per_member = torch.randn(members, 6, in_dim)
    expected_shared = torch.stack([m(shared) for m in mlps])
    expected_per_member = torch.stack([m(x) for m, x in zip(mlps, per_member)])
    torch.testing.assert_close(ensemble(shared), expected_shared)
    torch.testing.assert_close(ensemble(per_member), expected_per_member)
    subset = torch.tensor([2, 0])
    torch.testing.assert_close(ensemble(shared, subset), expected_shared[subset])


def test_ensemble_linear_init_distributions():
    torch.manual_seed(0)
    layer = EnsembleLinear(4, 64, 128)
    bound = 1 / math.sqrt(64)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    # U(-b, b) has std b / sqrt(3); members are drawn independently (not copies)
    assert abs(layer.weight.std().item() - bound / math.sqrt(3)) < 0.02 * bound
    assert not torch.equal(layer.weight[0], layer.weight[1])
    orthogonal = EnsembleLinear(3, 64, 32, init="orthogonal")
    for member in orthogonal.weight:  # (in x out), out <= in: orthonormal columns (gain 1, DrQ-v2)
        torch.testing.assert_close(member.T @ member, torch.eye(32), atol=1e-5, rtol=0)
    assert torch.count_nonzero(orthogonal.bias) == 0
    with pytest.raises(ValueError, match="weight init"):
        EnsembleLinear(2, 3, 4, init="xavier")


def test_random_shift_equals_replicate_pad_and_crop():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 10, 12), dtype=torch.uint8)
    pad = 4
    generator = torch.Generator().manual_seed(3)
    shifts = torch.randint(0, 2 * pad + 1, (6, 2),
                           generator=torch.Generator().manual_seed(3)) - pad
    shifted = random_shift(images, pad, generator)
    assert shifted.dtype == torch.uint8 and shifted.shape == images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate")
    for i, (dy, dx) in enumerate(shifts.tolist()):
        crop = padded[i, :, pad + dy:pad + dy + 10, pad + dx:pad + dx + 12]
        assert torch.equal(shifted[i].float(), crop)
    assert len({tuple(s) for s in shifts.tolist()}) > 1  # shifts differ per image


def test_pixel_encoder_shape_and_scaling():
    encoder = PixelEncoder((9, 84, 84))
    assert encoder.repr_dim == 32 * 35 * 35  # 84 -> 41 (stride 2) -> 39 -> 37 -> 35
    first = encoder.convnet[0]
    assert first.stride == (2, 2) and first.kernel_size == (3, 3) and first.out_channels == 32
    # input mapped to [-0.5, 0.5]: a mid-grey (127.5) image would be exactly 0 -> output = f(bias)
    zeros = encoder.convnet(torch.zeros(1, 9, 84, 84)).flatten(1)
    white = torch.full((1, 9, 84, 84), 255, dtype=torch.uint8)
    torch.testing.assert_close(encoder(white), encoder.convnet(torch.full((1, 9, 84, 84), 0.5)).flatten(1))
    assert zeros.shape == (1, encoder.repr_dim)


# ---- tanh-Gaussian policy --------------------------------------------------------------------

def test_tanh_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    mean = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    log_std = torch.tensor([[-0.5, 0.2, -3.0]], dtype=torch.float64)
    pre_tanh = torch.tensor([[0.1, -2.0, 2.1], [3.0, 8.0, -9.0], [-0.7, 0.0, 1.5]],
                            dtype=torch.float64)
    tanh = torch.distributions.transforms.TanhTransform(cache_size=1)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [tanh])
    action = tanh(pre_tanh)  # cached, so log_prob inverts exactly even where tanh(u) rounds to 1
    expected = reference.log_prob(action).sum(-1)
    torch.testing.assert_close(tanh_gaussian_log_prob(pre_tanh, mean, log_std), expected)
    # float32 at |u| = 9 stays finite (the naive log(1 - tanh^2) gives -inf there)
    assert torch.isfinite(tanh_gaussian_log_prob(pre_tanh.float(), mean.float(),
                                                 log_std.float())).all()


def test_tanh_gaussian_density_integrates_to_one():
    mean, log_std = torch.tensor([[0.4]], dtype=torch.float64), torch.tensor([[-0.3]], dtype=torch.float64)
    actions = torch.linspace(-1 + 1e-9, 1 - 1e-9, 400_001, dtype=torch.float64)
    density = tanh_gaussian_log_prob(torch.atanh(actions)[:, None], mean, log_std).exp()
    assert abs(torch.trapezoid(density, actions).item() - 1.0) < 1e-4


def test_sample_log_prob_is_the_density_at_the_sample():
    generator = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(64, 3, dtype=torch.float64), 0.3 * torch.randn(64, 3, dtype=torch.float64) - 1
    action, log_prob = sample_tanh_gaussian(mean, log_std, generator)
    assert action.abs().max() < 1
    torch.testing.assert_close(log_prob, tanh_gaussian_log_prob(torch.atanh(action), mean, log_std))


# ---- critic target ---------------------------------------------------------------------------

def set_hand_critic(critic):
    """N=2 critics, input [s, a] (2), one hidden layer of 2 ReLU units, scalar output."""
    q = critic.q
    with torch.no_grad():
        q.layers[0].weight.copy_(torch.tensor([[[1.0, -1.0], [0.5, 2.0]],
                                               [[-0.5, 1.0], [1.0, 1.0]]]))
        q.layers[0].bias.copy_(torch.tensor([[[0.1, 0.0]], [[0.0, -0.2]]]))
        q.layers[2].weight.copy_(torch.tensor([[[2.0], [-1.0]], [[1.0], [0.5]]]))
        q.layers[2].bias.copy_(torch.tensor([[[0.3]], [[-0.1]]]))


def numpy_q(member, s, a):
    w1 = [np.array([[1.0, -1.0], [0.5, 2.0]]), np.array([[-0.5, 1.0], [1.0, 1.0]])][member]
    b1 = [np.array([0.1, 0.0]), np.array([0.0, -0.2])][member]
    w2 = [np.array([2.0, -1.0]), np.array([1.0, 0.5])][member]
    b2 = [0.3, -0.1][member]
    hidden = np.maximum(np.stack([s, a], -1) @ w1 + b1, 0)
    return hidden @ w2 + b2


@pytest.mark.parametrize("backup_entropy", [True, False])
def test_bootstrap_target_on_hand_set_critics(backup_entropy):
    agent = small_agent(obs_dim=1, action_dim=1, hidden_dims=(2,), init_temperature=0.5,
                        backup_entropy=backup_entropy)
    set_hand_critic(agent.critic_target)
    s_next = np.array([0.5, -1.0, 2.0])
    a_next = np.array([0.2, 0.9, -0.6])
    log_prob = np.array([-1.2, 0.4, 0.0])
    reward, discount = np.array([1.0, 0.0, -2.0]), np.array([0.99, 0.0, 0.9801])
    q_min = np.minimum(numpy_q(0, s_next, a_next), numpy_q(1, s_next, a_next))
    expected = reward + discount * (q_min - (0.5 * log_prob if backup_entropy else 0.0))
    as_t = lambda x: torch.tensor(x, dtype=torch.float32)
    y = agent.bootstrap_target(as_t(reward), as_t(discount), as_t(s_next)[:, None],
                               as_t(a_next)[:, None], as_t(log_prob), members=None)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_critic_target_value_uses_policy_sample_and_subset():
    agent = small_agent(num_critics=5, num_min_critics=3)
    reward, discount, next_features = torch.randn(8), torch.rand(8), torch.randn(8, 3)
    state = agent.generator.get_state()
    y, a_next = agent.critic_target_value(reward, discount, next_features)
    agent.generator.set_state(state)
    with torch.no_grad():
        next_action, next_log_prob = sample_tanh_gaussian(*agent.actor(next_features),
                                                          agent.generator)
        members = agent.sample_critic_subset()
        all_q = agent.critic_target(next_features, next_action)
        expected = reward + discount * (all_q[members].min(0).values
                                        - agent.alpha * next_log_prob)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(a_next, next_action)  # the a' the cost critic reuses


def test_target_is_min_over_exactly_the_sampled_subset():
    agent = small_agent(num_critics=5, num_min_critics=2, backup_entropy=False)
    torch.manual_seed(1)
    next_features, next_action = torch.randn(32, 3), torch.rand(32, 2) * 2 - 1
    reward, discount = torch.randn(32), torch.full((32,), 0.99)
    with torch.no_grad():
        all_q = agent.critic_target(next_features, next_action)   # 5 x B
    seen = set()
    for _ in range(40):
        members = agent.sample_critic_subset()
        assert members.shape == (2,) and members[0] != members[1]
        seen.add(tuple(sorted(members.tolist())))
        with torch.no_grad():
            y = agent.bootstrap_target(reward, discount, next_features, next_action,
                                       torch.zeros(32), members)
        i, j = members.tolist()
        manual = reward + discount * torch.minimum(all_q[i], all_q[j])
        torch.testing.assert_close(y, manual)
        # min over a strict subset is >= the min over all members, and differs somewhere
        assert (y >= reward + discount * all_q.min(0).values - 1e-6).all()
    assert len(seen) > 5  # subsets are drawn at random, not fixed

    plain = small_agent(num_critics=2, num_min_critics=2, backup_entropy=False)
    assert plain.sample_critic_subset() is None
    with torch.no_grad():
        q = plain.critic_target(next_features, next_action)
        y = plain.bootstrap_target(reward, discount, next_features, next_action,
                                   torch.zeros(32), None)
    torch.testing.assert_close(y, reward + discount * torch.minimum(q[0], q[1]))


# ---- temperature -----------------------------------------------------------------------------

def test_temperature_loss_gradient_on_hand_case():
    agent = small_agent(action_dim=2, init_temperature=0.5, target_entropy_scale=-1.0)
    assert agent.target_entropy == -2.0
    entropy = torch.tensor(1.0)  # above the target of -2: alpha must decrease
    loss = agent.temperature_loss(entropy)
    loss.backward()
    assert loss.item() == pytest.approx(0.5 * 3.0)
    assert agent.log_alpha.grad.item() == pytest.approx(0.5 * 3.0)  # d/dlog_alpha = alpha*(H-T)
    agent.log_alpha.grad = None
    agent.temperature_loss(torch.tensor(-5.0)).backward()  # below the target: alpha increases
    assert agent.log_alpha.grad.item() == pytest.approx(0.5 * -3.0)

    # through a real update the temperature moves the way the entropy gap says
    source = FakeSource(state_obs(3), 2)
    metrics = agent.update(source, 0)
    went_down = metrics["temperature"] < 0.5
    assert went_down == (metrics["entropy"] > agent.target_entropy)


# ---- update mechanics ------------------------------------------------------------------------

def test_update_steps_critic_per_update_times_and_actor_once():
    agent = small_agent(critic_steps_per_update=3)
    source = FakeSource(state_obs(3), 2)
    sizes = []
    original_sample = source.sample
    source.sample = lambda n: sizes.append(n) or original_sample(n)
    metrics = agent.update(source, 0)
    assert sizes == [3 * 8]  # one sample call for all critic minibatches
    assert agent.critic_optimizer.state[agent._critic_params[0]]["step"].item() == 3
    assert agent.actor_optimizer.state[agent._actor_params[0]]["step"].item() == 1
    assert set(metrics) >= {"critic_loss", "actor_loss", "temperature", "entropy", "q_mean"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    # target critics moved by exactly 3 Polyak steps toward the changing online critics
    assert not torch.equal(agent.critic_target.q.layers[0].weight, agent.critic.q.layers[0].weight)


def test_critic_minibatches_keep_the_mixing_ratio():
    """A MixedSource returns primary rows first; every minibatch must still be half/half."""
    parts, batch_size = 4, 6
    rows = parts * batch_size
    from_secondary = (torch.arange(rows) >= rows // 2).float()
    batch = SimpleNamespace(obs={"state": torch.arange(rows).float()[:, None]},
                            action=torch.zeros(rows, 2), reward=from_secondary,
                            discount=torch.ones(rows), next_obs={"state": torch.zeros(rows, 1)})
    minibatches = split_minibatches(batch, parts, batch_size, "cpu")
    assert len(minibatches) == parts
    seen = []
    for minibatch in minibatches:
        assert minibatch.reward.shape == (batch_size,) and minibatch.action.shape == (batch_size, 2)
        assert minibatch.reward.sum().item() == batch_size / 2
        # obs rows travel with their rewards
        torch.testing.assert_close((minibatch.obs["state"][:, 0] >= rows // 2).float(),
                                   minibatch.reward)
        seen += minibatch.obs["state"][:, 0].tolist()
    assert sorted(seen) == list(range(rows))  # every row used exactly once
    with pytest.raises(ValueError, match="expected"):
        split_minibatches(batch, parts, batch_size + 1, "cpu")


def test_actor_step_leaves_critic_untouched():
    agent = small_agent()
    batch = FakeSource(state_obs(3), 2).sample(8)
    features, _ = agent.update_critic(batch)
    critic_before = [p.detach().clone() for p in agent._critic_params]
    grads_before = [p.grad.clone() for p in agent._critic_params]
    actor_before = [p.detach().clone() for p in agent._actor_params]
    agent.update_actor_and_temperature(features)
    for p, before, grad in zip(agent._critic_params, critic_before, grads_before):
        assert torch.equal(p, before) and torch.equal(p.grad, grad)
    assert any(not torch.equal(p, b) for p, b in zip(agent._actor_params, actor_before))


def test_polyak_update_is_lerp_by_tau():
    agent = small_agent(tau=0.25)
    with torch.no_grad():
        for p in agent._critic_params:
            p.add_(1.0)
    target_before = [p.clone() for p in agent._target_params]
    online_before = [p.detach().clone() for p in agent._critic_params]
    agent.critic_optimizer.param_groups[0]["lr"] = 0.0  # online critic stays put
    agent.update_critic(FakeSource(state_obs(3), 2).sample(8))
    for p, t0, o in zip(agent._target_params, target_before, online_before):
        torch.testing.assert_close(p, 0.75 * t0 + 0.25 * o)


# ---- checkpoints -----------------------------------------------------------------------------

def test_save_load_restores_actions_optimizers_and_rng():
    agent = small_agent(num_critics=4, num_min_critics=2)
    source = FakeSource(state_obs(3), 2, seed=1)
    for step in range(5):
        agent.update(source, step)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    obs = np.array([[0.1, -0.2, 0.3], [1.0, 0.0, -1.0]], dtype=np.float32)
    expected_actions = [agent.act(obs), agent.act(obs[0]), agent.act(obs, eval_mode=True)]
    expected_metrics = agent.update(FakeSource(state_obs(3), 2, seed=7), 5)

    other = small_agent(num_critics=4, num_min_critics=2, seed=123)
    assert not np.allclose(other.act(obs, eval_mode=True), expected_actions[2])
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=False))
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    restored = other.state_dict()
    for key in ("actor_optimizer", "critic_optimizer", "temperature_optimizer"):
        for param_id, state in saved[key]["state"].items():
            for name, value in state.items():
                torch.testing.assert_close(restored[key]["state"][param_id][name], value)
    assert other.num_updates == 5
    actions = [other.act(obs), other.act(obs[0]), other.act(obs, eval_mode=True)]
    for got, want in zip(actions, expected_actions):
        np.testing.assert_array_equal(got, want)
    assert other.update(FakeSource(state_obs(3), 2, seed=7), 5) == expected_metrics


def test_load_rng_state_from_another_device_type_reseeds_deterministically():
    # A CUDA generator's state (16 bytes) cannot be set on a CPU generator (5056 bytes):
    # simulate a GPU checkpoint by swapping in such a state.
    agent = small_agent()
    agent.update(FakeSource(state_obs(3), 2, seed=1), 0)
    state = agent.state_dict()
    state["generator"] = torch.arange(16, dtype=torch.uint8)
    state["generator_device"] = "cuda"
    obs = np.array([[0.1, -0.2, 0.3], [1.0, 0.0, -1.0]], dtype=np.float32)

    loaded = []
    for seed in (5, 6):  # two agents with different RNGs load the same checkpoint
        other = small_agent(seed=seed)
        with pytest.warns(UserWarning, match="stochastic actions and updates will differ"):
            other.load_state_dict(state)
        loaded.append(other)
    for other in loaded:
        np.testing.assert_array_equal(other.act(obs, eval_mode=True),
                                      agent.act(obs, eval_mode=True))
    # The reseed depends only on the saved bytes: both copies sample the same actions.
    np.testing.assert_array_equal(loaded[0].act(obs), loaded[1].act(obs))
    state["generator"] = torch.arange(1, 17, dtype=torch.uint8)
    with pytest.warns(UserWarning):
        loaded[1].load_state_dict(state)
    assert not np.array_equal(loaded[1].act(obs), loaded[0].act(obs))


def test_critic_step_loss_adam_step_and_polyak():
    online = torch.nn.Parameter(torch.tensor([[1.0], [3.0]]))    # 2 members x B=1
    target_param = torch.tensor([[0.0], [0.0]])
    optimizer = torch.optim.SGD([online], lr=0.5)
    loss = critic_step(online, torch.tensor([2.0]), optimizer, [target_param], [online], tau=0.25)
    assert loss.item() == pytest.approx((1 - 2) ** 2 + (3 - 2) ** 2)
    # d loss / d q_i = 2 (q_i - y): q <- q - 0.5 * 2 (q - y) = y for both members.
    torch.testing.assert_close(online.detach(), torch.tensor([[2.0], [2.0]]))
    torch.testing.assert_close(target_param, torch.tensor([[0.5], [0.5]]))
    assert not loss.requires_grad
    assert or_default(None, 3e-4) == 3e-4 and or_default(0.0, 3e-4) == 0.0


# ---- pixels ----------------------------------------------------------------------------------

def pixel_obs(channels, size):
    return lambda n, g: torch.randint(0, 256, (n, channels, size, size), generator=g,
                                      dtype=torch.uint8)


@pytest.mark.parametrize("with_state", [False, True])
def test_pixel_update_trains_encoder_by_critic_only(with_state):
    pixels = spaces.Box(0, 255, (6, 16, 16), np.uint8)
    obs_space = spaces.Dict({"pixels": pixels, "state": box(4)}) if with_state else pixels
    cfg = SACConfig.from_dict(dict(hidden_dims=(16,), batch_size=4, seed=0,
                                   encoder={"feature_dim": 8}))
    agent = SACAgent(cfg, obs_space, action_box(2))
    make_pixels = pixel_obs(6, 16)
    make_obs = ((lambda n, g: {"pixels": make_pixels(n, g), "state": torch.randn(n, 4, generator=g)})
                if with_state else make_pixels)
    source = FakeSource(make_obs, 2)
    encoder_params = list(agent.encoder.parameters())

    before = [p.detach().clone() for p in encoder_params]
    features, _ = agent.update_critic(source.sample(4))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder_params)
    assert all(not torch.equal(p, b) for p, b in zip(encoder_params, before))  # critic trains it

    after_critic = [p.detach().clone() for p in encoder_params]
    grads_after_critic = [p.grad.clone() for p in encoder_params]
    assert not features.requires_grad  # the actor gets detached features
    agent.update_actor_and_temperature(features)
    for p, b, g in zip(encoder_params, after_critic, grads_after_critic):
        assert torch.equal(p, b) and torch.equal(p.grad, g)  # actor loss never reaches it

    metrics = agent.update(source, 1)
    assert all(math.isfinite(v) for v in metrics.values())
    obs = source.sample(1).obs
    single = ({k: v[0].numpy() for k, v in obs.items()} if with_state else obs[0].numpy())
    action = agent.act(single)
    assert action.shape == (2,) and action.dtype == np.float32 and np.abs(action).max() <= 1
    assert "encoder" in agent.probes()


# ---- configuration and registry --------------------------------------------------------------

def test_make_agent_registry_presets_and_errors():
    assert {"sac", "rlpd"} <= set(AGENTS)
    agent = make_agent({"name": "rlpd", "hidden_dims": [32, 32], "seed": 0}, box(3), action_box(2), "cpu")
    cfg = agent.cfg
    assert (cfg.num_critics, cfg.num_min_critics, cfg.critic_layer_norm, cfg.backup_entropy,
            cfg.target_entropy_scale, cfg.actor_q_reduction) == (10, 2, True, False, -0.5, "mean")
    assert agent.critic.q.layers[0].weight.shape == (10, 5, 32)
    assert agent.target_entropy == -1.0
    assert rlpd_config(critic_steps_per_update=20).critic_steps_per_update == 20
    probes = agent.probes()
    assert any(isinstance(m, EnsembleLinear) for m in probes.values())
    assert any(name.startswith("actor.") and isinstance(m, torch.nn.Linear)
               for name, m in probes.items())
    with pytest.raises(ValueError, match=r"unknown SAC config key\(s\)"):
        make_agent({"name": "sac", "learning_rate": 1.0}, box(3), action_box(2))
    with pytest.raises(ValueError, match="unknown agent name"):
        make_agent({"name": "ppo"}, box(3), action_box(2))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        make_agent({"name": "sac"}, box(3), spaces.Box(-2, 2, (2,), np.float32))
    with pytest.raises(ValueError, match="num_min_critics"):
        make_agent({"name": "sac", "num_critics": 2, "num_min_critics": 3}, box(3), action_box(2))
    with pytest.raises(ValueError, match="does not match"):
        small_agent().act(np.zeros(4, np.float32))


# ---- learning check --------------------------------------------------------------------------

TARGET_ACTION = torch.tensor([0.5, -0.3])
BANDIT_UPDATES = 1000


def bandit_eval_error(**overrides):
    """One-step bandit, reward = -||a - a*||^2, discount 0: SAC's eval action must reach a*."""
    torch.manual_seed(0)
    # a low initial temperature: the entropy bonus would otherwise pull the mean toward 0
    values = dict(hidden_dims=(64, 64), batch_size=128, lr=1e-3, init_temperature=0.1, seed=0)
    values.update(overrides)
    agent = SACAgent(SACConfig.from_dict(values), box(2), action_box(2))
    reward = lambda action: -(action - TARGET_ACTION).pow(2).sum(-1)
    source = FakeSource(state_obs(2), 2, reward_fn=reward, discount=0.0)
    for step in range(BANDIT_UPDATES):
        agent.update(source, step)
    obs = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    return np.abs(agent.act(obs, eval_mode=True) - TARGET_ACTION.numpy()).max()


def test_sac_learns_bandit_and_broken_actor_does_not():
    assert bandit_eval_error() < 0.1
    assert bandit_eval_error(actor_lr=0.0) > 0.3


# ---- precision -------------------------------------------------------------------------------

def test_bfloat16_precision_runs_nets_in_bfloat16_and_keeps_outputs_float32():
    with pytest.raises(ValueError, match="precision"):
        small_agent(precision="float16")
    full, half = small_agent(seed=0), small_agent(seed=0, precision="bfloat16")
    half.critic.load_state_dict(full.critic.state_dict())
    half.actor.load_state_dict(full.actor.state_dict())
    torch.manual_seed(0)
    features, action = torch.randn(64, 3), torch.rand(64, 2) * 2 - 1
    seen_dtypes = []
    hook = half.critic.q.layers[0].register_forward_hook(
        lambda module, inputs, output: seen_dtypes.append(output.dtype))
    q_half = half.q_values(half.critic, features, action)
    hook.remove()
    q_full = full.q_values(full.critic, features, action)
    assert seen_dtypes == [torch.bfloat16] and q_half.dtype == q_full.dtype == torch.float32
    # bfloat16 keeps 8 mantissa bits: relative error ~1e-2, far from the fp32 result's 1e-7
    torch.testing.assert_close(q_half, q_full, rtol=5e-2, atol=5e-2)
    assert not torch.equal(q_half, q_full)
    mean_half, log_std_half = half.policy(features)
    mean_full, _ = full.policy(features)
    assert mean_half.dtype == log_std_half.dtype == torch.float32
    torch.testing.assert_close(mean_half, mean_full, rtol=5e-2, atol=5e-2)
    metrics = half.update(FakeSource(state_obs(3), 2), 0)
    assert all(math.isfinite(value) for value in metrics.values())
    assert half.log_alpha.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in half._critic_params + half._actor_params)


# ---- learner protocol and in-place surgery ----------------------------------------------------

def test_sac_is_a_learner_with_named_networks_and_optimizers():
    from robo_rl.agents import Learner, LearnerConfig
    agent = small_agent()
    assert isinstance(agent, Learner) and isinstance(agent.cfg, LearnerConfig)
    assert set(agent.networks()) == {"encoder", "actor", "critic", "critic_target"}
    assert set(agent.named_optimizers()) == {"actor", "critic", "temperature"}
    assert agent.target_networks() == {"critic": "critic_target"}
    obs = np.zeros(3, np.float32)
    np.testing.assert_array_equal(agent.act(obs, 7, eval_mode=True), agent.act(obs, eval_mode=True))
    with pytest.raises(TypeError, match="eval_mode by keyword"):
        agent.act(obs, True)  # would otherwise be read as step=True


def adam_state(optimizer, params):
    return [{k: v.clone() for k, v in optimizer.state[p].items()} if p in optimizer.state else None
            for p in params]


def test_reinitialize_critic_in_place_clears_its_adam_state_only():
    agent = small_agent(num_critics=3, num_min_critics=2, critic_layer_norm=True)
    source = FakeSource(state_obs(3), 2, seed=1)
    for step in range(3):
        agent.update(source, step)
    critic_params = list(agent.critic.parameters())
    ids_before = [id(p) for p in critic_params]
    critic_before = [p.detach().clone() for p in critic_params]
    actor_before = [p.detach().clone() for p in agent._actor_params]
    actor_state = adam_state(agent.actor_optimizer, agent._actor_params)
    alpha_state = adam_state(agent.temperature_optimizer, [agent.log_alpha])
    assert all(agent.critic_optimizer.state[p]["exp_avg"].abs().sum() > 0 for p in critic_params)

    agent.reinitialize_("critic")

    assert [id(p) for p in agent.critic.parameters()] == ids_before  # same tensors, in place
    changed = [not torch.equal(p, b) for p, b in zip(critic_params, critic_before)]
    assert all(changed[i] for i, p in enumerate(critic_params) if p.dim() == 3)  # every weight
    layer_norms = [m for m in agent.critic.modules() if type(m).__name__ == "EnsembleLayerNorm"]
    assert layer_norms and all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in layer_norms)
    assert all(p not in agent.critic_optimizer.state for p in critic_params)  # Adam state gone
    for p, before in zip(agent._actor_params, actor_before):
        assert torch.equal(p, before)                                          # others untouched
    assert adam_state(agent.actor_optimizer, agent._actor_params).__repr__() == actor_state.__repr__()
    assert adam_state(agent.temperature_optimizer, [agent.log_alpha]).__repr__() == alpha_state.__repr__()
    for target, online in zip(agent.critic_target.parameters(), critic_params):
        assert torch.equal(target, online)  # the target restarts from the new critic

    metrics = agent.update(source, 3)  # Adam re-initialises the cleared state: step 1 again
    assert all(math.isfinite(v) for v in metrics.values())
    assert agent.critic_optimizer.state[critic_params[0]]["step"].item() == 1
    assert agent.actor_optimizer.state[agent._actor_params[0]]["step"].item() == 4


def test_reinitialize_draws_the_construction_distribution_from_the_agent_rng():
    agent = small_agent(hidden_dims=(256,), seed=3)
    agent.update(FakeSource(state_obs(3), 2), 0)
    agent.reinitialize_(["actor"], sync_targets=False)
    for layer in agent.actor.modules():
        if isinstance(layer, torch.nn.Linear):  # nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in))
            bound = 1 / math.sqrt(layer.in_features)
            assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
            if layer.weight.numel() > 500:
                assert abs(layer.weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    twin = small_agent(hidden_dims=(256,), seed=3)
    twin.update(FakeSource(state_obs(3), 2), 0)
    twin.reinitialize_(["actor"], sync_targets=False)
    for a, b in zip(agent._actor_params, twin._actor_params):
        assert torch.equal(a, b)  # drawn from the agent's generator: reproducible
    orthogonal = small_agent(hidden_dims=(32,), weight_init="orthogonal")
    orthogonal.reinitialize_("critic")
    first = orthogonal.critic.q.layers[0]
    for member in first.weight:  # (in x out) = 5 x 32: orthonormal rows (Linear gain 1, DrQ-v2)
        torch.testing.assert_close(member @ member.T, torch.eye(5), atol=1e-5, rtol=0)
    assert torch.count_nonzero(first.bias) == 0
    with pytest.raises(KeyError, match="unknown networks"):
        agent.reinitialize_("critics")


def test_shrink_perturb_mixes_linear_weights_and_resets_their_state():
    from robo_rl.nets import EnsembleLayerNorm
    agent = small_agent(critic_layer_norm=True)
    source = FakeSource(state_obs(3), 2, seed=1)
    agent.update(source, 0)
    norm_params = {id(p) for m in agent.critic.modules() if isinstance(m, EnsembleLayerNorm)
                   for p in m.parameters()}
    before = [p.detach().clone() for p in agent.critic.parameters()]
    agent.shrink_perturb_("critic", alpha=1.0)
    for p, b in zip(agent.critic.parameters(), before):
        torch.testing.assert_close(p, b)  # alpha 1 keeps the weights, resets Linear Adam state
        assert (p in agent.critic_optimizer.state) == (id(p) in norm_params)
    agent.update(source, 1)
    before = [p.detach().clone() for p in agent.critic.parameters()]
    agent.shrink_perturb_("critic", alpha=0.5)
    for p, b in zip(agent.critic.parameters(), before):
        if id(p) in norm_params:  # DrM leaves LayerNorm (and its Adam state) alone
            assert torch.equal(p, b) and p in agent.critic_optimizer.state
        else:
            assert not torch.equal(p, b) and p not in agent.critic_optimizer.state
    assert len(norm_params) == 4
    # exactly alpha * old + (1 - alpha) * fresh, fresh drawn as reset_parameters_ draws it
    from robo_rl.nets import reset_parameters_
    plain = small_agent()
    before = [p.detach().clone() for p in plain.critic.parameters()]
    fresh = copy.deepcopy(plain.critic)
    rng_state = plain.generator.get_state()
    plain.shrink_perturb_("critic", alpha=0.3)
    plain.generator.set_state(rng_state)
    reset_parameters_(fresh, "default", generator=plain.generator)
    for p, b, f in zip(plain.critic.parameters(), before, fresh.parameters()):
        torch.testing.assert_close(p, 0.3 * b + 0.7 * f)
    with pytest.raises(ValueError, match="alpha"):
        agent.shrink_perturb_("actor", alpha=1.5)


def test_reset_optimizer_state_only_forgets_the_given_params():
    from robo_rl.agents.common import reset_optimizer_state_
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([a, b], lr=0.1, fused=True)
    (a.sum() + b.sum()).backward()
    optimizer.step()
    assert reset_optimizer_state_(optimizer, [a, torch.nn.Parameter(torch.ones(1))]) == 1
    assert a not in optimizer.state and optimizer.state[b]["step"].item() == 1
    (a.sum() + b.sum()).backward()
    optimizer.step()  # mixed fresh / stepped state in one fused step
    assert optimizer.state[a]["step"].item() == 1 and optimizer.state[b]["step"].item() == 2


def test_old_utd_key_names_its_new_name():
    with pytest.raises(ValueError, match="agent.utd was renamed to agent.critic_steps_per_update"):
        make_agent({"name": "sac", "utd": 2}, box(3), action_box(2))
    with pytest.raises(ValueError, match="renamed to agent.critic_steps_per_update"):
        rlpd_config(utd=20)
    with pytest.raises(ValueError, match="critic_steps_per_update"):
        small_agent(critic_steps_per_update=0)


def test_a_checkpoint_saved_before_the_component_refactor_still_loads():
    # The state-dict layout of SAC (with and without a constraint) from before components:
    # a constrained checkpoint carries its cost critic under "constraint".
    constrained = make_agent(dict(name="sac", hidden_dims=[16], batch_size=8, seed=0), box(3),
                             action_box(2), constraint={"name": "energy"})
    state = constrained.state_dict()
    assert set(state) == {"encoder", "actor", "critic", "critic_target", "log_alpha",
                          "actor_optimizer", "critic_optimizer", "temperature_optimizer",
                          "generator", "generator_device", "num_updates", "constraint"}
    assert set(state["constraint"]) == {"critic", "critic_target", "optimizer", "multiplier"}
    weights = {f"q.layers.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    assert set(state["critic"]) == set(state["constraint"]["critic"]) == weights
    plain = make_agent(dict(name="sac", hidden_dims=[16], batch_size=8, seed=1), box(3),
                       action_box(2))
    with pytest.raises(KeyError, match="constraint"):  # a plain checkpoint lacks the cost critic
        constrained.load_state_dict(plain.state_dict())
    plain.load_state_dict({k: v for k, v in state.items() if k != "constraint"})


def test_agent_state_saved_before_the_component_refactor_still_loads():
    """tests/data/sac_state_ccfa428.pt: SAC state dicts (plain and with the energy constraint)
    written by robo_rl at commit ccfa428, before the learner seams of issue 6; the agent built
    today from the same config loads them and acts as the old one did (to float32 rounding)."""
    from pathlib import Path

    saved = torch.load(Path(__file__).parent / "data" / "sac_state_ccfa428.pt", weights_only=False)
    fixed = np.linspace(-1, 1, 5).astype(np.float32)
    for name, constraint in (("plain", None), ("energy", {"name": "energy"})):
        agent = make_agent({"name": "sac", "hidden_dims": [8, 8], "batch_size": 4, "seed": 0},
                           box(5), action_box(2), "cpu", constraint=constraint)
        agent.load_state_dict(saved[name]["state"])
        # The saved actions were computed on another machine: float32 kernels may round differently
        # on another CPU (1 ulp seen), so "exactly" means to float32 precision; a wrong load is far off.
        np.testing.assert_allclose(agent.act(fixed, eval_mode=True), saved[name]["action"], rtol=0, atol=1e-6)
