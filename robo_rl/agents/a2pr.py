"""A2PR: Adaptive Advantage-guided Policy Regularisation (Liu et al., ICML 2024; ltlhuuu/A2PR).

TD3 (robo_rl/agents/td3.py: twin critic, target smoothing, policy delay 2, normalised states)
plus a value net V and a VAE "augmented behaviour policy". One update, after TD3's critic step
(y = r + d min Qbar(s', a'), a' the smoothed target action):

    V:    t = min(y, r + d * min_i Q_i(s', a'))  (online critics);  loss = mean_B (V(s) - t)^2
    VAE:  (a_hat, mu_z, sigma_z) = VAE(s, a)
          loss = mean_{B,A}(w * 1[Q_1(s,a) > V(s)] * (a_hat - a)^2) + beta_KL * KL(N(mu_z, sigma_z) || N(0, 1))
          -> it reconstructs only the dataset actions with a positive advantage
    every policy_delay-th update, the actor:
          pi = mu(s);  a~ = VAE(s, pi)                                  # the augmented action
          A_pi = Q_1(s, a~) - V(s);  A_a = Q_1(s, a) - V(s)
          a* = a~ if A_pi >= A_a else a                                 # ``advantage_target``
          loss = -(alpha / mean|Q_1(s, pi)|) mean Q_1(s, pi)
                 + mean_{B,A}(m * (1[Q_1(s,a~) >= V(s)] + 1[Q_1(s,a) > V(s)]) * (pi - a*)^2)

V(s) in the VAE and actor terms is the value before this update's V step; the VAE latent has
2|A| dims, clipped to [-0.5, 0.5] only when decoding without an encoding (``VAE.sample``); its
log-std is clamped to [-4, 15]. As in the authors' code a~ is not detached: the regression
target a* = a~ passes gradient to the actor through the VAE (whose own weights the actor
optimiser does not step). alpha (normalised Q weight), m (``mask``) and w (``vae_weight``) are the
per-dataset values; configs/agent/a2pr_*.yaml hold the ones the authors publish.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robo_rl.agents.common import make_adam
from robo_rl.agents.td3 import TD3Config, TD3Learner
from robo_rl.agents.td3_bc import normalized_q_term
from robo_rl.nets import MLP


@dataclass
class A2PRConfig(TD3Config):
    """Every number of A2PR (defaults: the authors' code). Networks: actor 3x256, each critic and
    V 4x256, VAE 750-750."""
    name: str = "a2pr"
    hidden_dims: tuple[int, ...] = (256, 256, 256, 256)       # each critic
    actor_hidden_dims: tuple[int, ...] | None = (256, 256, 256)
    value_hidden_dims: tuple[int, ...] = (256, 256, 256, 256)
    value_lr: float = 3e-4
    vae_hidden_dims: tuple[int, ...] = (750, 750)             # encoder and decoder
    vae_latent_scale: int = 2              # latent dims = scale * |A|
    vae_latent_clip: float = 0.5           # |z| bound when sampling the decoder from the prior
    vae_log_std_min: float = -4.0
    vae_log_std_max: float = 15.0
    vae_lr: float = 1e-3                   # the authors' Adam default
    vae_kl_weight: float = 0.5
    vae_weight: float = 1.0                # w: weight of the positive-advantage reconstruction
    mask: float = 0.5                      # m: weight of the advantage-guided BC term (0.4-15 by dataset)
    alpha: float = 2.5                     # normalised Q weight (halfcheetah 40)
    normalize_states: bool = True

    def problems(self) -> list[str]:
        problems = [f"{key} must be >= 0 (got {getattr(self, key)})"
                    for key in ("vae_weight", "mask", "alpha", "vae_kl_weight", "vae_latent_clip")
                    if getattr(self, key) < 0]
        if self.vae_latent_scale < 1:
            problems.append(f"vae_latent_scale must be >= 1 (got {self.vae_latent_scale})")
        if self.vae_log_std_min >= self.vae_log_std_max:
            problems.append("vae_log_std_min must be < vae_log_std_max")
        return problems


class VAE(nn.Module):
    """Conditional VAE of actions given states (BCQ's): encoder (s, a) -> (mu_z, log sigma_z),
    decoder (s, z) -> tanh action."""

    def __init__(self, state_dim: int, action_dim: int, cfg: A2PRConfig):
        super().__init__()
        self.latent_dim = cfg.vae_latent_scale * action_dim
        self.encoder = MLP(state_dim + action_dim, cfg.vae_hidden_dims, 2 * self.latent_dim, cfg.activation)
        self.decoder = MLP(state_dim + self.latent_dim, cfg.vae_hidden_dims, action_dim, cfg.activation,
                           output_activation="tanh")
        self.log_std_range = (cfg.vae_log_std_min, cfg.vae_log_std_max)
        self.latent_clip = cfg.vae_latent_clip

    def forward(self, state, action, generator: torch.Generator):
        """(reconstruction, mu_z, sigma_z) with z = mu_z + sigma_z * eps."""
        mean, log_std = self.encoder(torch.cat([state, action], dim=-1)).chunk(2, dim=-1)
        std = log_std.clamp(*self.log_std_range).exp()
        eps = torch.randn(std.shape, generator=generator, device=std.device, dtype=std.dtype)
        return self.decode(state, mean + std * eps), mean, std

    def decode(self, state, z):
        return self.decoder(torch.cat([state, z], dim=-1))

    def sample(self, state, generator: torch.Generator):
        """An action from the prior, z ~ N(0, 1) clipped to [-c, c]."""
        z = torch.randn((state.shape[0], self.latent_dim), generator=generator, device=state.device)
        return self.decode(state, z.clamp(-self.latent_clip, self.latent_clip))


def gaussian_kl(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """mean over entries of KL(N(mean, std^2) || N(0, 1)) = -0.5 (1 + log std^2 - mean^2 - std^2)."""
    return (-0.5 * (1.0 + torch.log(std.pow(2)) - mean.pow(2) - std.pow(2))).mean()


def positive_advantage_reconstruction(recon, action, q_data, value, weight: float) -> torch.Tensor:
    """mean_{B,A}(w * 1[Q(s,a) > V(s)] * (a_hat - a)^2): non-positive-advantage rows add nothing."""
    keep = (q_data > value).float().unsqueeze(-1)
    return (weight * keep * (recon - action).pow(2)).mean()


def advantage_target(augmented, action, q_augmented, q_data, value):
    """(a*, n): a* = the augmented action where its advantage is >= the data action's, else the data
    action; n = 1[Q(s,a~) >= V(s)] + 1[Q(s,a) > V(s)] in {0, 1, 2} (the weight of the BC term)."""
    use_augmented = (q_augmented - value >= q_data - value).unsqueeze(-1)
    target = torch.where(use_augmented, augmented, action)
    count = (q_augmented >= value).float() + (q_data > value).float()
    return target, count


class A2PRAgent(TD3Learner):
    """A2PR (a ``Learner``); see the module docstring."""

    def build_extra_(self, state_dim: int) -> None:
        cfg = self.cfg
        self.value = MLP(state_dim, cfg.value_hidden_dims, 1, cfg.activation)
        self.vae = VAE(state_dim, self.action_dim, cfg)
        self.init_weights_of_(self.value, self.vae)
        self.value_optimizer = make_adam(self.value.parameters(), cfg.value_lr)
        self.vae_optimizer = make_adam(self.vae.parameters(), cfg.vae_lr)

    def v(self, obs):
        return self.value(obs).squeeze(-1)

    def after_critic(self, batch, obs, next_obs, next_action, target):
        cfg = self.cfg
        with torch.no_grad():
            online_next = batch.reward + batch.discount * self.critic(next_obs, next_action).min(dim=0).values
            value_target = torch.minimum(online_next, target)
        value = self.v(obs)
        value_loss = (value - value_target).pow(2).mean()
        self.value_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_optimizer.step()
        value = value.detach()  # V(s) before this step, for the VAE and the actor (as the authors)

        recon, mean, std = self.vae(obs, batch.action, self.generator)
        with torch.no_grad():
            q_data = self.q1(obs, batch.action)
        reconstruction = positive_advantage_reconstruction(recon, batch.action, q_data, value, cfg.vae_weight)
        kl = gaussian_kl(mean, std)
        vae_loss = reconstruction + cfg.vae_kl_weight * kl
        self.vae_optimizer.zero_grad(set_to_none=True)
        vae_loss.backward()
        self.vae_optimizer.step()
        metrics = {"value_loss": value_loss.detach(), "vae_loss": vae_loss.detach(), "vae_kl": kl.detach(),
                   "positive_advantage_share": (q_data > value).float().mean()}
        return metrics, {"value": value}

    def actor_loss(self, batch, obs, context):
        cfg, value = self.cfg, context["value"]
        pi = self.actor(obs)
        q_term, lam = normalized_q_term(self.q1(obs, pi), cfg.alpha)
        augmented, _, _ = self.vae(obs, pi, self.generator)
        with torch.no_grad():
            q_augmented = self.q1(obs, augmented)
            q_data = self.q1(obs, batch.action)
        target, count = advantage_target(augmented, batch.action, q_augmented, q_data, value)
        bc = (cfg.mask * count.unsqueeze(-1) * (pi - target).pow(2)).mean()
        return q_term + bc, {"bc_loss": bc.detach(), "q_term": q_term.detach(), "lambda": lam,
                             "augmented_target_share": (q_augmented >= q_data).float().mean()}

    def extra_networks(self):
        return {"value": self.value, "vae": self.vae}

    def extra_optimizers(self):
        return {"value": self.value_optimizer, "vae": self.vae_optimizer}

    def probe_extra(self, obs, action) -> None:
        self.value(obs)
        self.vae.encoder(torch.cat([obs, action], dim=-1))


def hopper_medium_config(**values) -> A2PRConfig:
    """The authors' hopper-medium run (README): alpha 2.5, vae_weight 1.0, mask 0.4, gamma 0.995."""
    return A2PRConfig.from_dict({"name": "a2pr_hopper", **values},
                                base=A2PRConfig(alpha=2.5, vae_weight=1.0, mask=0.4, gamma=0.995))


def halfcheetah_config(**values) -> A2PRConfig:
    """HalfCheetah: alpha 40 (the paper's appendix); mask and vae_weight at the code's defaults."""
    return A2PRConfig.from_dict({"name": "a2pr_halfcheetah", **values}, base=A2PRConfig(alpha=40.0))
