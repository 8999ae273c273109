"""`robo-rl collect`: D4RL-style datasets from robo_rl agents.

    robo-rl collect task=gym/Hopper-v5 policy=random steps=100000 reference.expert=EXPERT.pt out=data/hopper-random
    robo-rl collect task=gym/Hopper-v5 policy=RUN/checkpoints/step_00040000.pt kind=medium reference.expert=EXPERT.pt out=...
    robo-rl collect task=gym/Hopper-v5 policy=replay:RUN/checkpoints/step_00040000.pt kind=medium-replay reference.expert=...
    robo-rl collect task=arm/reach policy=scripted reference.expert=scripted out=data/reach-scripted
    robo-rl dataset concat data/hopper-medium data/hopper-expert --out data/hopper-medium-expert --kind medium-expert

The D4RL recipe (Fu et al. 2020) with our agents: ``random`` = uniform actions; ``medium`` = a
policy stopped at about a third of the expert's return (a kept checkpoint of the expert's own run,
``train.keep_every``), acting with its exploration as D4RL's SAC policies did (``policy_mode=sample``);
``medium-replay`` = the replay of the run that trained the medium policy, up to that checkpoint;
``expert`` = the final policy; ``medium-expert`` = medium followed by expert.

Reference returns for normalised scores (0 = random, 100 = expert) are measured once, before the
data, over ``reference.episodes`` evaluation episodes (the uniform random policy, and the expert
``reference.expert`` acting with its mean), and stored in dataset.json.

Crash safety: whole episodes are collected until ``steps`` transitions are reached; the dataset is
flushed at every episode end, so a killed collection loses at most the episode it was in, and
running the same command again resumes with the next episode (its start seeds continue the
same stream). Episode starts come from ``seed`` through robo_rl.seeding, disjoint from the
reference episodes.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from omegaconf import MISSING, DictConfig, OmegaConf

from robo_rl.envs.config import EnvConfig
from robo_rl.offline.dataset import (DatasetError, DatasetInfo, episode_return, episodes_from_slots, read_episodes,
                                     read_info, read_slots, write_dataset, write_info)
from robo_rl.seeding import COLLECT_ACTIONS, COLLECT_EPISODES, episode_seed, eval_seeds, stream_seed

log = logging.getLogger("robo_rl")

RANDOM, SCRIPTED, REPLAY_PREFIX = "random", "scripted", "replay:"
POLICY_MODES = ("sample", "mean")


@dataclass
class ReferenceConfig:
    """Reference returns of normalised scores; a number given here is used as is."""
    expert: str | None = None            # expert checkpoint, or "scripted" (arm tasks)
    expert_return: float | None = None   # instead of measuring it (e.g. a published D4RL value)
    random_return: float | None = None   # instead of measuring the uniform random policy
    episodes: int = 10                   # evaluation episodes per measured reference


@dataclass
class CollectRunConfig:
    """`robo-rl collect`: configs/collect.yaml."""
    task: EnvConfig = MISSING
    out: str = MISSING                   # the new dataset directory
    policy: str = RANDOM                 # random | scripted | <checkpoint.pt> | replay:<checkpoint.pt>
    kind: str | None = None              # label in dataset.json (medium, expert, ...); default from policy
    policy_mode: str = "sample"          # checkpoints: sample (their exploration, as D4RL) | mean
    steps: int = 100_000                 # transitions (whole episodes until reached); not for replay:
    seed: int = 0
    chunk_size: int = 10_000             # slots per chunk file
    device: str = "auto"
    threads: int | None = None
    progress: bool = True
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)

    def __post_init__(self) -> None:
        from robo_rl.config_schema import _raise

        problems = []
        if self.steps < 1:
            problems.append(f"steps must be >= 1 (got {self.steps})")
        if self.policy_mode not in POLICY_MODES:
            problems.append(f"policy_mode must be one of {POLICY_MODES} (got {self.policy_mode})")
        if self.seed < 0:
            problems.append(f"seed must be >= 0 (got {self.seed})")
        if self.chunk_size < 1:
            problems.append(f"chunk_size must be >= 1 (got {self.chunk_size})")
        if self.reference.episodes < 1:
            problems.append(f"reference.episodes must be >= 1 (got {self.reference.episodes})")
        checkpoint = self.policy[len(REPLAY_PREFIX):] if self.policy.startswith(REPLAY_PREFIX) else self.policy
        if self.policy not in (RANDOM, SCRIPTED) and not Path(checkpoint).is_file():
            problems.append(f"policy={self.policy}: {checkpoint} is not a file; pass random, scripted, a "
                            f"checkpoint (.pt) or replay:<checkpoint of the run whose replay to copy>")
        expert = self.reference.expert
        if self.reference.expert_return is None and expert is None:
            problems.append("reference.expert is not set: pass the expert checkpoint (or scripted) so normalised "
                            "scores have their 100, or reference.expert_return=<number>")
        elif expert not in (None, SCRIPTED) and not Path(expert).is_file():
            problems.append(f"reference.expert={expert} is not a file")
        _raise(problems)

    def default_kind(self) -> str:
        if self.kind:
            return self.kind
        if self.policy in (RANDOM, SCRIPTED):
            return self.policy
        return "replay" if self.policy.startswith(REPLAY_PREFIX) else "policy"


# Slots reserved past `steps` for the last episode when the task sets no max_episode_steps.
EPISODE_STEPS_BOUND = 10_000


class UniformPolicy:
    """Uniform actions in [-1, 1] from a stream of their own per episode, so a resumed collection
    draws what an unbroken one would have (index 0 of the stream is the reference's)."""

    def __init__(self, shape, seed: int):
        self.shape, self.seed = tuple(shape), seed
        self.rng = np.random.default_rng(stream_seed(seed, COLLECT_ACTIONS, 0))

    def begin_episode(self, episode: int) -> None:
        self.rng = np.random.default_rng(stream_seed(self.seed, COLLECT_ACTIONS, 1 + episode))

    def __call__(self, obs) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, self.shape).astype(np.float32)


def scripted_policy(env, task: str) -> Callable[[Any], np.ndarray]:
    """The arm task's privileged scripted policy (it reads the simulator, not the observation)."""
    task_env = getattr(getattr(env, "backend", None), "task", None)
    if task_env is None or not hasattr(task_env, "scripted_action"):
        raise DatasetError(f"policy=scripted needs an arm task with a scripted policy (task={task}); pass a "
                           f"checkpoint instead")
    return lambda obs: np.asarray(task_env.scripted_action(), np.float32)


def checkpoint_policy(path: str, env, task: str, device, eval_mode: bool) -> tuple[Callable, int]:
    """(policy, the checkpoint's step) of a robo_rl checkpoint trained on ``task``."""
    from robo_rl.checkpoint import load_checkpoint
    from robo_rl.loops.evaluate import agent_from_checkpoint

    payload = load_checkpoint(path)
    trained_on = str(OmegaConf.create(payload["config"]).task.name)
    if trained_on != task:
        raise DatasetError(f"{path} was trained on {trained_on}; collecting on {task} needs a checkpoint of {task}")
    agent = agent_from_checkpoint(payload, Path(path), env, device)
    step = int(payload["step"])
    return (lambda obs: agent.act(obs, step=step, eval_mode=eval_mode)), step


def measure_return(env, policy: Callable, seeds: list[int]) -> float:
    returns = []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def _references(cfg: CollectRunConfig, env, task: str, device) -> tuple[float, float]:
    seeds = eval_seeds(cfg.seed, cfg.reference.episodes)
    random_return = cfg.reference.random_return
    if random_return is None:
        random_return = measure_return(env, UniformPolicy(env.action_space.shape, cfg.seed), seeds)
    expert_return = cfg.reference.expert_return
    if expert_return is None:
        expert = (scripted_policy(env, task) if cfg.reference.expert == SCRIPTED else
                  checkpoint_policy(cfg.reference.expert, env, task, device, eval_mode=True)[0])
        expert_return = measure_return(env, expert, seeds)
    return float(random_return), float(expert_return)


def _replay_prefix(checkpoint: str) -> tuple[dict, dict, dict]:
    """(metadata, slots, source facts) of the replay that the checkpoint's run had collected when
    the checkpoint was saved (D4RL's medium-replay: everything the medium policy's run saw)."""
    from robo_rl.checkpoint import load_checkpoint

    payload = load_checkpoint(checkpoint)
    replay_dir = Path(checkpoint).resolve().parent.parent / "replay"
    if not replay_dir.is_dir():
        raise DatasetError(f"policy=replay:{checkpoint}: its run has no persisted replay at {replay_dir} "
                           f"(the run used replay.persist=false)")
    metadata, slots = read_slots(replay_dir)
    upto = int(payload["replay"]["num_slots_written"])
    if len(slots["reward"]) < upto:
        raise DatasetError(f"{replay_dir} holds {len(slots['reward'])} slots, fewer than the {upto} the "
                           f"checkpoint saw; the replay was cut (a lost chunk?)")
    slots = {name: value[:upto] for name, value in slots.items()}
    slots["has_action"] = slots["has_action"].copy()
    slots["has_action"][upto - 1] = False  # its successor is past the checkpoint
    return metadata, slots, {"run_replay": str(replay_dir), "upto_slot": upto, "checkpoint_step": int(payload["step"])}


def collect(cfg: CollectRunConfig) -> DatasetInfo:
    """Collect the dataset ``cfg`` describes into ``cfg.out`` (resuming a stopped collection)."""
    from robo_rl.envs import make_env
    from robo_rl.loops.common import resolve_device, set_threads
    from robo_rl.replay import ReplayBuffer
    from robo_rl.replay.storage import space_to_spec, spec_to_space

    out = Path(cfg.out)
    task = cfg.task.name
    device = resolve_device(cfg.device)
    set_threads(cfg.threads)
    env_cfg = dataclasses.replace(cfg.task, seed=cfg.seed)
    env = make_env(env_cfg, seed=cfg.seed)
    settings = {"policy": cfg.policy, "policy_mode": cfg.policy_mode, "steps": cfg.steps, "seed": cfg.seed,
                "task": task, "frame_stack": env_cfg.frame_stack}
    try:
        resumed = _check_out(out, settings)
        if resumed is not None:
            info = resumed
        else:
            random_return, expert_return = _references(cfg, env, task, device)
            info = DatasetInfo(task=task, kind=cfg.default_kind(), random_return=random_return,
                               expert_return=expert_return, source={"settings": settings})
        print(f"robo-rl collect: reference returns random {info.random_return:.1f}, expert "
              f"{info.expert_return:.1f}", file=sys.stderr, flush=True)

        if cfg.policy.startswith(REPLAY_PREFIX):
            metadata, slots, facts = _replay_prefix(cfg.policy[len(REPLAY_PREFIX):])
            if metadata["observation_space"] != space_to_spec(env.observation_space):
                raise DatasetError(f"{facts['run_replay']} was recorded with other observations than task {task}")
            info.source.update(facts)
            return write_dataset(out, episodes_from_slots(metadata, slots), spec_to_space(metadata["observation_space"]),
                                 spec_to_space(metadata["action_space"]), info, frame_stack=env_cfg.frame_stack,
                                 chunk_size=cfg.chunk_size)

        if cfg.policy == RANDOM:
            policy = UniformPolicy(env.action_space.shape, cfg.seed)
        elif cfg.policy == SCRIPTED:
            policy = scripted_policy(env, task)
        else:
            policy, step = checkpoint_policy(cfg.policy, env, task, device, eval_mode=cfg.policy_mode == "mean")
            info.source["checkpoint_step"] = step
        # Capacity: every slot of the target plus the longest episode past it; a dataset never wraps.
        capacity = cfg.steps + 2 * int(env_cfg.max_episode_steps or EPISODE_STEPS_BOUND) + 2
        buffer = ReplayBuffer(env.observation_space, env.action_space, capacity=capacity,
                              frame_stack=env_cfg.frame_stack, directory=out, chunk_size=min(cfg.chunk_size, capacity - 1))
        if resumed is not None:
            buffer.load_from_disk()
            # Count from the disk, not dataset.json: a kill between an episode's flush and the info
            # write must not collect that episode twice. A cut episode stays unsampleable junk.
            done = list(read_episodes(out))
            info.episodes, info.transitions = len(done), sum(len(e) for e in done)
            info.returns = [episode_return(e) for e in done]
        else:
            write_info(out, info)  # complete=false: a crash from here on resumes
        _rollouts(cfg, env, policy, buffer, info, out)
        info.complete = True
        write_info(out, info)
        return info
    finally:
        env.close()


def _check_out(out: Path, settings: dict) -> DatasetInfo | None:
    """None for a new dataset; the info of a stopped collection with the same settings to resume."""
    if not out.exists() or not any(out.iterdir()):
        return None
    try:
        info = read_info(out)
    except DatasetError:
        raise DatasetError(f"{out} exists and is not a dataset being collected; choose a new out= path "
                           f"(nothing was changed)") from None
    if info.complete:
        raise DatasetError(f"{out} already holds a complete dataset ({info.transitions} transitions); choose a "
                           f"new out= path (nothing was changed)")
    if info.source.get("settings") != settings:
        raise DatasetError(f"{out} is a stopped collection with other settings ({info.source.get('settings')}); "
                           f"resume it with those or choose a new out= path")
    print(f"robo-rl collect: resuming {out} after {info.episodes} episodes ({info.transitions} transitions)",
          file=sys.stderr, flush=True)
    return info


def _rollouts(cfg: CollectRunConfig, env, policy, buffer, info: DatasetInfo, out: Path) -> None:
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=info.transitions, unit="step", desc=f"collect {info.kind}",
               dynamic_ncols=True, disable=not cfg.progress)
    try:
        while info.transitions < cfg.steps:
            obs, _ = env.reset(seed=episode_seed(cfg.seed, COLLECT_EPISODES, info.episodes))
            if hasattr(policy, "begin_episode"):
                policy.begin_episode(info.episodes)
            buffer.reset(obs)
            done, rewards = False, []
            while not done:
                action = np.asarray(policy(obs), np.float32)
                if not np.all(np.isfinite(action)):
                    raise DatasetError(f"the policy produced a non-finite action {action} in episode "
                                       f"{info.episodes}; the episodes before it are kept in {out}")
                obs, reward, terminated, truncated, _ = env.step(action)
                buffer.add(action, reward, obs, terminated, truncated)
                rewards.append(float(reward))
                done = terminated or truncated
            buffer.flush()  # the episode is on disk before it is counted
            info.episodes += 1
            info.transitions += len(rewards)
            info.returns.append(float(np.sum(rewards)))
            write_info(out, info)
            bar.update(len(rewards))
            bar.set_postfix(episodes=info.episodes, ret=f"{np.mean(info.returns):.1f}", refresh=False)
    finally:
        bar.close()


def run_collect(cfg: DictConfig) -> str:
    """The CLI entry: validate, collect, and the one-paragraph report."""
    collect_cfg = OmegaConf.to_object(cfg)  # CollectRunConfig's checks
    info = collect(collect_cfg)
    return f"robo_rl collect: {Path(collect_cfg.out)}\n  " + info.summary()


__all__ = ["CollectRunConfig", "ReferenceConfig", "collect", "run_collect", "scripted_policy",
           "checkpoint_policy", "episode_return"]
