"""Plasticity probes and resets for any learner: dormant ratio, fraction of active units (FAU),
shrink-and-perturb and ReDo.

Definitions (shared/design/algorithms.md; DrM's ``utils.cal_dormant_ratio``, Adaptive RR's FAU):

* Dormant ratio (DrM). For a Linear layer with output h (B x U), unit i scores
  s_i = mean_b |h_bi| / mean_j mean_b |h_bj|; it is dormant when s_i < tau (DrM: 0.025). The
  dormant ratio of a network = dormant units / units, pooled over its Linear layers (every
  member of an ensemble layer is scored as a layer of its own). DrM's beta is the actor's.
  Which h: DrM's ``cal_dormant_ratio`` hooks the output of every ``nn.Linear``, but its hidden
  layers are followed by ``nn.ReLU(inplace=True)``, which overwrites the hooked tensor before the
  ratio is computed; so for those layers the authors' code scores the post-ReLU activation
  (ReDo's definition), and pre-activation only for the trunk Linear (followed by LayerNorm) and
  the output Linear (followed by tanh). robo_rl does the same by default
  (``dormant_after_activation``): a Linear directly followed by a ReLU-family activation is scored
  on that activation's output, any other on its own output. With ``false`` every Linear is scored
  on its pre-activation output, which on robo_rl's MLPs stays near 0 dormant throughout training
  (measured: DrQ-v2 on dmc/hopper_hop, 33k steps: 0.0), because a unit whose pre-activation is
  large and negative - dead after its ReLU - is not small in |h|.
* FAU (Adaptive RR). The share of post-activation outputs > 0, pooled over the batch and the
  network's ReLU-family activations. Tanh outputs (the DrQ-v2 trunk) are symmetric around 0, so
  "> 0" says nothing about activity there; they are left out.

A probe runs on a training batch (``learner.last_batch``, the learner's own last minibatch) and
does not disturb training: forward passes under no_grad through ``learner.probe_forward`` (no
augmentation, no sampling), hooks removed afterwards, and the learner's RNG and torch's global
RNG restored, so a run with probes is the same run as one without (tests/test_plasticity.py).
Which modules are probed is the learner's ``probes()``: {"<network>.<path>": module}.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch
from torch import nn

from robo_rl.nets import EnsembleLinear
from robo_rl.nets.init import _reset_layer_, check_weight_init

DORMANT_LAYER_TYPES = (nn.Linear, EnsembleLinear)
# Activations whose "output > 0" means a unit is active (not Tanh: symmetric around 0).
FAU_ACTIVATION_TYPES = (nn.ReLU, nn.ELU, nn.GELU, nn.SiLU, nn.LeakyReLU)


@dataclass
class PlasticityConfig:
    """``plasticity:`` in configs/config.yaml: the probes the loop logs for every learner."""
    every: int = 1000                 # agent steps between probes (plasticity.csv, TensorBoard); 0 = off
    dormant_threshold: float = 0.025  # tau: unit i is dormant when s_i < tau (DrM)
    # Score a Linear layer directly followed by a ReLU on the ReLU's output (what DrM's code
    # measures, see the module docstring); false: always the Linear output (pre-activation).
    dormant_after_activation: bool = True

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ValueError(f"plasticity.every must be >= 0 (0 turns probes off), got {self.every}")
        if not 0.0 <= self.dormant_threshold < 1.0:
            raise ValueError(f"plasticity.dormant_threshold must be in [0, 1), got "
                             f"{self.dormant_threshold}")


# ---------------------------------------------------------------------------------------------
# The metrics on layer outputs


def _per_layer(output: torch.Tensor) -> torch.Tensor:
    """A Linear output as L x B x U: an ensemble's N x B x U stays, a B x U (or ... x U) becomes
    1 x B' x U."""
    if output.dim() == 3:
        return output
    return output.reshape(1, -1, output.shape[-1])


def dormant_scores(output: torch.Tensor) -> torch.Tensor:
    """s_i = mean_b |h_bi| / mean_j mean_b |h_bj| per unit (L x U; L = ensemble members or 1).
    A layer whose units are all silent scores 0 everywhere (all dormant)."""
    mean_abs = _per_layer(output).float().abs().mean(dim=1)            # L x U
    layer_mean = mean_abs.mean(dim=1, keepdim=True)
    return torch.where(layer_mean > 0, mean_abs / layer_mean.clamp_min(torch.finfo(torch.float32).tiny),
                       torch.zeros_like(mean_abs))


def dormant_units(output: torch.Tensor, tau: float) -> tuple[int, int]:
    """(dormant units, units) of one Linear output."""
    scores = dormant_scores(output)
    return int((scores < tau).sum()), scores.numel()


def dormant_ratio(outputs: Iterable[torch.Tensor], tau: float) -> float:
    """Dormant units / units, pooled over the given Linear outputs (DrM's beta for the actor's)."""
    dormant = total = 0
    for output in outputs:
        d, n = dormant_units(output, tau)
        dormant, total = dormant + d, total + n
    return dormant / total if total else 0.0


def active_counts(output: torch.Tensor) -> tuple[int, int]:
    """(entries > 0, entries) of a post-activation output."""
    return int((output > 0).sum()), output.numel()


def fraction_active(outputs: Iterable[torch.Tensor]) -> float:
    """FAU: entries > 0 / entries, pooled over the given post-activation outputs."""
    active = total = 0
    for output in outputs:
        a, n = active_counts(output)
        active, total = active + a, total + n
    return active / total if total else 0.0


# ---------------------------------------------------------------------------------------------
# Probing a learner


@dataclass
class PlasticityReport:
    """What one probe found. ``networks``: per network ("actor", "critic", ...) its pooled
    ``dormant_ratio`` (Linear outputs) and ``fau`` (activations); ``modules``: per probed module
    its own value (``dormant_ratio`` for Linear layers, ``fau`` for activations)."""
    networks: dict[str, dict[str, float]] = field(default_factory=dict)
    modules: dict[str, dict[str, float]] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat metrics for the logs: "<network>_dormant_ratio", "<network>_fau"."""
        return {f"{network}_{key}": value for network, values in self.networks.items()
                for key, value in values.items()}


class _Recorder:
    def __init__(self):
        self.outputs: list[torch.Tensor] = []

    def __call__(self, module, inputs, output):
        self.outputs.append(output.detach())


def _is_dormant_layer(module: nn.Module) -> bool:
    return isinstance(module, DORMANT_LAYER_TYPES)


def _counts_for_fau(module: nn.Module) -> bool:
    """Activations of the ReLU family, and composite modules (a conv encoder: its output is its
    last ReLU's); never Tanh."""
    if isinstance(module, nn.Tanh) or _is_dormant_layer(module):
        return False
    return isinstance(module, FAU_ACTIVATION_TYPES) or len(list(module.children())) > 0


def dormant_sources(named_modules: Mapping[str, nn.Module],
                    after_activation: bool = True) -> dict[str, str]:
    """{Linear layer name: name of the module whose output scores its units}: the layer itself,
    or (``after_activation``) the ReLU-family activation that directly follows it in the same
    container (sibling index + 1, e.g. "net.0" -> "net.1"; a LayerNorm in between breaks it)."""
    sources = {}
    for name, module in named_modules.items():
        if not _is_dormant_layer(module):
            continue
        sources[name] = name
        parent, _, index = name.rpartition(".")
        if after_activation and index.isdigit():
            following = f"{parent}.{int(index) + 1}" if parent else str(int(index) + 1)
            if isinstance(named_modules.get(following), FAU_ACTIVATION_TYPES):
                sources[name] = following
    return sources


@torch.no_grad()
def record_outputs(learner, batch, names: Iterable[str] | None = None) -> dict[str, list[torch.Tensor]]:
    """Outputs of the learner's probed modules (``names``: a subset of ``probes()``) on one
    deterministic forward pass over ``batch``; hooks removed and RNG states restored after."""
    probes: Mapping[str, nn.Module] = learner.probes()
    if names is not None:
        names = list(names)
        unknown = sorted(set(names) - set(probes))
        if unknown:
            raise KeyError(f"unknown probes {unknown}: this learner probes {sorted(probes)}")
        probes = {name: probes[name] for name in names}
    recorders = {name: _Recorder() for name in probes}
    handles = [module.register_forward_hook(recorders[name]) for name, module in probes.items()]
    generator = getattr(learner, "generator", None)
    generator_state = generator.get_state() if generator is not None else None
    torch_state = torch.get_rng_state()
    try:
        learner.probe_forward(batch)
    finally:
        for handle in handles:
            handle.remove()
        if generator_state is not None:
            generator.set_state(generator_state)
        torch.set_rng_state(torch_state)
    return {name: recorder.outputs for name, recorder in recorders.items()}


def probe(learner, batch, dormant_threshold: float = 0.025,
          dormant_after_activation: bool = True) -> PlasticityReport:
    """Dormant ratio and FAU of every network the learner probes, on ``batch``."""
    outputs = record_outputs(learner, batch)
    modules_by_name = learner.probes()
    sources = dormant_sources(modules_by_name, dormant_after_activation)
    report = PlasticityReport()
    pooled: dict[str, list[int]] = {}  # network -> [dormant, units, active, entries]
    for name, module in modules_by_name.items():
        network = name.split(".", 1)[0]
        counts = pooled.setdefault(network, [0, 0, 0, 0])
        if name in sources:
            recorded = outputs[sources[name]]
            d = sum(dormant_units(o, dormant_threshold)[0] for o in recorded)
            n = sum(dormant_units(o, dormant_threshold)[1] for o in recorded)
            counts[0] += d
            counts[1] += n
            if n:
                report.modules[name] = {"dormant_ratio": d / n}
        elif _counts_for_fau(module):
            recorded = outputs[name]
            a, n = sum(active_counts(o)[0] for o in recorded), sum(active_counts(o)[1] for o in recorded)
            counts[2] += a
            counts[3] += n
            if n:
                report.modules.setdefault(name, {})["fau"] = a / n
    for network, (d, n, a, m) in pooled.items():
        values = {}
        if n:
            values["dormant_ratio"] = d / n
        if m:
            values["fau"] = a / m
        if values:
            report.networks[network] = values
    return report


@torch.no_grad()
def module_dormant_ratio(module: nn.Module, inputs, tau: float, after_activation: bool = True) -> float:
    """The dormant ratio of ``module`` on one no-grad forward of ``inputs`` (a tensor or a tuple),
    pooled over its Linear layers, each scored on ``dormant_sources`` (DrM's ``cal_dormant_ratio``
    on the actor). Hooks are removed after; the module draws no random numbers."""
    named = dict(module.named_modules())
    sources = dormant_sources(named, after_activation)
    recorders = {name: _Recorder() for name in sources.values()}
    handles = [named[name].register_forward_hook(recorder) for name, recorder in recorders.items()]
    try:
        module(*inputs) if isinstance(inputs, tuple) else module(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return dormant_ratio((o for source in sources.values() for o in recorders[source].outputs), tau)


def network_dormant_ratio(learner, batch, network: str, tau: float,
                          after_activation: bool = True) -> float:
    """The dormant ratio of one network (e.g. DrM's beta = the actor's) on ``batch``."""
    probes = learner.probes()
    sources = {name: source for name, source in dormant_sources(probes, after_activation).items()
               if name.split(".", 1)[0] == network}
    if not sources:
        raise KeyError(f"the learner probes no Linear layer of network {network!r}")
    outputs = record_outputs(learner, batch, set(sources.values()))
    return dormant_ratio((o for source in sources.values() for o in outputs[source]), tau)


def network_fau(learner, batch, network: str) -> float:
    """The FAU of one network (Adaptive RR's plasticity signal: the critic's) on ``batch``,
    pooled over its ReLU-family activations (``_counts_for_fau``)."""
    names = {name for name, module in learner.probes().items()
             if name.split(".", 1)[0] == network and not _is_dormant_layer(module)
             and _counts_for_fau(module)}
    if not names:
        raise KeyError(f"the learner probes no activation of network {network!r}")
    outputs = record_outputs(learner, batch, names)
    return fraction_active(o for name in names for o in outputs[name])


# ---------------------------------------------------------------------------------------------
# Resets


def shrink_perturb_(learner, names: str | Iterable[str], alpha: float) -> None:
    """theta <- alpha theta + (1 - alpha) theta_fresh on the Linear layers of the learner's named
    networks, optimiser state of the changed parameters forgotten (``LearnerBase.shrink_perturb_``;
    Ash & Adams 2020, DrM's perturbation)."""
    learner.shrink_perturb_(names, alpha)


@torch.no_grad()
def redo_(learner, network: str, batch, tau: float = 0.025, after_activation: bool = True) -> int:
    """ReDo (Sokar et al. 2023) on one network of the learner: every dormant unit (s_i <= tau)
    of a hidden Linear layer gets fresh incoming weights and bias (drawn with the learner's
    ``weight_init`` and RNG), its outgoing weights (column i of the next Linear layer in module
    order, which holds for robo_rl's MLPs, ensembles and trunks) are zeroed, and Adam's moments
    of exactly those entries are cleared. The network's function is unchanged at the moment of
    the reset only through the zeroed outgoing weights. Returns how many units were reset."""
    check_weight_init(learner.cfg.weight_init)
    orthogonal = learner.cfg.weight_init == "orthogonal"
    module = learner.networks()[network]
    layers = [m for m in module.modules() if _is_dormant_layer(m)]
    probes = learner.probes()
    by_module = {id(m): name for name, m in probes.items() if name.split(".", 1)[0] == network}
    names = [by_module.get(id(layer)) for layer in layers]
    if None in names:
        raise KeyError(f"ReDo needs every Linear layer of {network!r} among the learner's probes()")
    sources = dormant_sources(probes, after_activation)
    outputs = record_outputs(learner, batch, {sources[name] for name in names})
    optimizers = list(learner.named_optimizers().values())
    # All dormant units from the one forward pass; then every incoming re-draw before any
    # outgoing zeroing, so a re-drawn unit of the next layer cannot undo a zeroed output.
    dormant_by_layer = [dormant_scores(torch.cat(outputs[sources[name]], dim=-2)) <= tau
                        for name in names[:-1]]
    resets = []
    for layer, dormant in zip(layers[:-1], dormant_by_layer):
        if not dormant.any():
            continue
        fresh = _fresh_copy(layer, orthogonal, learner.generator)
        for member, units in enumerate(dormant):
            index = units.nonzero(as_tuple=True)[0]
            if index.numel():
                _copy_units_(layer, fresh, member, index, optimizers)
                resets.append((layer, member, index))
    position = {id(layer): k for k, layer in enumerate(layers)}
    for layer, member, index in resets:
        # A plain layer's unit feeds every member of a following ensemble layer.
        _zero_inputs_(layers[position[id(layer)] + 1],
                      member if isinstance(layer, EnsembleLinear) else None, index, optimizers)
    return sum(index.numel() for _, _, index in resets)


def _fresh_copy(layer: nn.Module, orthogonal: bool, generator: torch.Generator) -> nn.Module:
    import copy
    fresh = copy.deepcopy(layer)
    _reset_layer_(fresh, orthogonal, generator)
    return fresh


def _clear_moments_(optimizers, param: torch.Tensor, index) -> None:
    for optimizer in optimizers:
        state = optimizer.state.get(param)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][index] = 0


def _copy_units_(layer, fresh, member: int, index: torch.Tensor, optimizers) -> None:
    """Incoming weights and bias of units ``index`` (of ensemble ``member``) from ``fresh``."""
    if isinstance(layer, EnsembleLinear):   # weight N x in x out, bias N x 1 x out
        weight_index, bias_index = (member, slice(None), index), (member, 0, index)
    else:                                   # weight out x in, bias out
        weight_index, bias_index = (index,), (index,)
    layer.weight[weight_index] = fresh.weight[weight_index]
    _clear_moments_(optimizers, layer.weight, weight_index)
    if layer.bias is not None:
        layer.bias[bias_index] = fresh.bias[bias_index]
        _clear_moments_(optimizers, layer.bias, bias_index)


def _zero_inputs_(following, member: int | None, index: torch.Tensor, optimizers) -> None:
    """Zero the weights through which units ``index`` of the previous layer feed ``following``
    (its inputs 0..width-1 are that layer's outputs): of ensemble ``member``, or of every member
    when ``member`` is None."""
    if isinstance(following, EnsembleLinear):   # weight N x in x out
        for m in range(following.num_members) if member is None else [member]:
            following.weight[m, index, :] = 0
            _clear_moments_(optimizers, following.weight, (m, index, slice(None)))
    else:                                       # weight out x in
        following.weight[:, index] = 0
        _clear_moments_(optimizers, following.weight, (slice(None), index))
