"""Pixel encoder (DrQ-v2), random-shift augmentation, and the observation plumbing every
learner shares for state, pixel and {pixels, state} observations."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robo_rl.nets.init import init_weights_
from robo_rl.spaces import is_pixel_box


@dataclass
class EncoderConfig:
    """Pixel encoder and per-head trunk sizes (DrQ-v2 defaults; SAC-AE/SERL use feature_dim 50)."""
    feature_dim: int = 50      # trunk output: Linear(conv features) -> LayerNorm -> Tanh
    num_filters: int = 32      # channels of every conv layer
    num_layers: int = 4        # conv layers; the first has stride 2, the rest stride 1
    kernel_size: int = 3
    first_stride: int = 2


class PixelEncoder(nn.Module):
    """DrQ-v2 conv encoder: uint8 C x H x W -> /255 - 0.5 -> conv stack (ReLU) -> flatten."""

    def __init__(self, obs_shape: tuple[int, int, int], num_filters: int = 32,
                 num_layers: int = 4, kernel_size: int = 3, first_stride: int = 2):
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(f"PixelEncoder expects a (C, H, W) shape, got {obs_shape}")
        layers: list[nn.Module] = []
        channels = obs_shape[0]
        for index in range(num_layers):
            layers += [nn.Conv2d(channels, num_filters, kernel_size,
                                 stride=first_stride if index == 0 else 1), nn.ReLU()]
            channels = num_filters
        self.convnet = nn.Sequential(*layers)
        with torch.no_grad():
            self.repr_dim = int(self.convnet(torch.zeros(1, *obs_shape)).numel())
        self.obs_shape = tuple(obs_shape)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255.0 - 0.5
        return self.convnet(x).flatten(1)


def random_shift(images: torch.Tensor, pad: int = 4,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ random shift: replicate-pad by ``pad`` then crop back to H x W at a random offset,
    independently per image. Replicate padding + crop equals reading the source pixel at the
    shifted index clamped to the border, so it is done with one gather on the original tensor
    (any dtype; uint8 stays uint8, shifts are exact integers). images: B x C x H x W."""
    if images.dim() != 4:
        raise ValueError(f"random_shift expects B x C x H x W images, got {tuple(images.shape)}")
    batch, channels, height, width = images.shape
    device = images.device
    shifts = torch.randint(0, 2 * pad + 1, (batch, 2), device=device, generator=generator) - pad
    rows = (torch.arange(height, device=device) + shifts[:, :1]).clamp_(0, height - 1)  # B x H
    cols = (torch.arange(width, device=device) + shifts[:, 1:]).clamp_(0, width - 1)    # B x W
    flat_index = (rows.unsqueeze(2) * width + cols.unsqueeze(1)).view(batch, 1, height * width)
    shifted = images.reshape(batch, channels, height * width).gather(
        2, flat_index.expand(batch, channels, height * width))
    return shifted.view(batch, channels, height, width)



class ObservationEncoder(nn.Module):
    """Turns an observation (state tensor, uint8 pixel tensor, or dict {"pixels", "state"})
    into one flat tensor [conv features, state]. Shared by actor and critic; learners decide
    which loss trains it (DrQ-v2/SAC here: the critic's). ``pixel_dim``/``state_dim`` tell
    ``FeatureTrunk`` where the conv part ends."""

    def __init__(self, observation_space, encoder_cfg: EncoderConfig, weight_init: str = "default"):
        super().__init__()
        self.pixel_key: str | None = None
        self.state_key: str | None = None
        self.encoder: PixelEncoder | None = None
        pixel_space, state_space = None, None
        if hasattr(observation_space, "spaces") and isinstance(observation_space.spaces, dict):
            keys = set(observation_space.spaces)
            if not keys <= {"pixels", "state"} or not keys:
                raise ValueError(f"dict observations must have keys 'pixels' and/or 'state', got "
                                 f"{sorted(keys)}: rename them in the env wrapper")
            pixel_space = observation_space.spaces.get("pixels")
            state_space = observation_space.spaces.get("state")
            self.pixel_key = "pixels" if pixel_space is not None else None
            self.state_key = "state" if state_space is not None else None
        elif is_pixel_box(observation_space):
            pixel_space = observation_space
        elif len(observation_space.shape) == 1:
            state_space = observation_space
        else:
            raise ValueError(f"unsupported observation space {observation_space}: use a flat float "
                             f"Box (state), a uint8 C x H x W Box (pixels) or a Dict of both")
        if pixel_space is not None and not is_pixel_box(pixel_space):
            raise ValueError(f"pixel observations must be uint8 C x H x W, got {pixel_space}")
        if pixel_space is not None:
            self.encoder = PixelEncoder(tuple(pixel_space.shape), encoder_cfg.num_filters,
                                        encoder_cfg.num_layers, encoder_cfg.kernel_size,
                                        encoder_cfg.first_stride)
            init_weights_(self.encoder, weight_init)
        self.has_pixels = pixel_space is not None
        self.is_dict = self.pixel_key is not None or self.state_key is not None
        self.pixel_dim = self.encoder.repr_dim if self.encoder is not None else 0
        self.state_dim = int(np.prod(state_space.shape)) if state_space is not None else 0
        self.out_dim = self.pixel_dim + self.state_dim

    def pixels_of(self, obs):
        if not self.has_pixels:
            return None
        return obs[self.pixel_key] if self.is_dict else obs

    def with_pixels(self, obs, pixels):
        """The observation with its pixels replaced (e.g. by an augmented copy)."""
        if not self.is_dict:
            return pixels
        return {**obs, self.pixel_key: pixels}

    def forward(self, obs) -> torch.Tensor:
        if not self.is_dict:
            return self.encoder(obs) if self.encoder is not None else obs
        parts = []
        if self.encoder is not None:
            parts.append(self.encoder(obs[self.pixel_key]))
        if self.state_key is not None:
            parts.append(obs[self.state_key])
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


class FeatureTrunk(nn.Module):
    """Per-head projection of encoder output: conv features -> Linear -> LayerNorm -> Tanh
    (DrQ-v2 trunk), state features appended unchanged. Identity for state-only inputs."""

    def __init__(self, pixel_dim: int, state_dim: int, feature_dim: int):
        super().__init__()
        self.pixel_dim = pixel_dim
        self.projection = (nn.Sequential(nn.Linear(pixel_dim, feature_dim),
                                         nn.LayerNorm(feature_dim), nn.Tanh())
                           if pixel_dim > 0 else None)
        self.out_dim = (feature_dim if pixel_dim > 0 else 0) + state_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.projection is None:
            return features
        projected = self.projection(features[..., :self.pixel_dim])
        if features.shape[-1] == self.pixel_dim:
            return projected
        return torch.cat([projected, features[..., self.pixel_dim:]], dim=-1)
