"""Network building blocks shared by every learner (SAC/RLPD, DrQ-v2, DrM, TD3+BC, A2PR)."""
from robo_rl.nets.actor import DeterministicActor
from robo_rl.nets.critic import EnsembleCritic
from robo_rl.nets.encoder import (EncoderConfig, FeatureTrunk, ObservationEncoder, PixelEncoder,
                                  random_shift)
from robo_rl.nets.init import (WEIGHT_INITS, init_weights_, orthogonal_init_, reset_parameters_,
                              shrink_perturb_, uniform_fan_in_)
from robo_rl.nets.mlp import (ACTIVATIONS, MLP, EnsembleLayerNorm, EnsembleLinear, EnsembleMLP,
                              make_activation)

__all__ = [
    "ACTIVATIONS", "DeterministicActor", "EnsembleCritic", "MLP", "EnsembleLayerNorm", "EnsembleLinear", "EnsembleMLP", "make_activation",
    "EncoderConfig", "FeatureTrunk", "ObservationEncoder", "PixelEncoder", "random_shift",
    "WEIGHT_INITS", "init_weights_", "orthogonal_init_", "reset_parameters_",
    "shrink_perturb_", "uniform_fan_in_",
]
