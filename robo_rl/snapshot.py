"""SnapshotRL / S3RL: student episodes that start from a teacher's states (snapshot=s3rl).

The learner is unchanged; only where training episodes begin changes (shared/design/algorithms.md,
authors' code sdpkjc/snapshotrl):

1. Teacher trajectories. The teacher (a robo_rl checkpoint of the same task, or ``scripted``: an
   arm task's privileged scripted policy) runs ``teacher_episodes`` episodes; the best
   ``best_episodes`` by return are kept, and every ``save_every`` teacher steps of them (from the
   reset state on) a snapshot is saved: the env's full state (``env.get_state()``: physics,
   task state and RNG, frame stack) plus a status value - the teacher critic's Q(s, pi(s))
   (``status=critic``), or the discounted return-to-go of the teacher's episode from that state
   (``status=return_to_go``, the one a teacher without a critic has).
2. Status classification. k-means (scikit-learn) with ``clusters`` centres over the 1-D status
   values; a snapshot reset draws a cluster uniformly, then a snapshot of it uniformly, so rare
   statuses (the states just before a success, the states of a fall) are drawn as often as the
   common ones.
3. Student trajectory truncation. An episode begun from a snapshot ends (truncated, bootstrap
   kept) ``truncate_steps`` agent steps later.
4. Schedule. Snapshot resets for the first ``snapshot_steps`` student agent steps, then the
   env's own reset; the replay keeps everything.

Departures from the authors' code, on purpose: a snapshot is the env's saved state, never a
deep copy of the env object (restore-then-step equals the original trajectory bit for bit,
tests/test_envs.py); snapshots are counted per teacher episode from its reset (theirs: one
global step counter); the critic status is the mean over the teacher's critic heads at its
deterministic action (theirs: Q1 at a sampled action). Snapshots are states of a simulator:
``hardware=twin|real`` cannot restore a real arm and is refused.

The store (snapshots, statuses, cluster labels) is written once, atomically, to
``<run dir>/snapshots/store.pt`` before training starts, and reused on resume and when
``snapshot.store=PATH`` names one; the sampler's RNG and the count of snapshot resets are in
the run's checkpoint (``episode_starts``).
"""
from __future__ import annotations

import hashlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from robo_rl.atomic import write_atomically
from robo_rl.loops.episodes import EpisodeStart, ResetStarts, check_start_kind
from robo_rl.seeding import SNAPSHOT_STARTS, TEACHER_EPISODES, episode_seed, stream_seed

log = logging.getLogger("robo_rl")

STORE_FORMAT = "robo_rl-snapshots"
STORE_FORMAT_VERSION = 1
STORE_NAME = "store.pt"
SCRIPTED = "scripted"
STATUS_KINDS = ("auto", "critic", "return_to_go")


class SnapshotError(ValueError):
    """A teacher or snapshot store does not fit the run (task, spaces) or cannot be read."""


@dataclass
class NoSnapshotConfig:
    """snapshot=none: every training episode starts with env.reset."""

    name: str = "none"


@dataclass
class S3RLConfig:
    """snapshot=s3rl (configs/snapshot/s3rl.yaml holds the same defaults)."""

    name: str = "s3rl"
    teacher: str = ""             # a robo_rl checkpoint of this task, or "scripted" (arm tasks)
    store: str | None = None      # a snapshot store file (another run's snapshots/store.pt) instead of a teacher
    teacher_episodes: int = 10    # teacher episodes rolled out
    best_episodes: int = 10       # of them, the best by return give snapshots
    save_every: int = 10          # teacher steps between snapshots (from the reset state on)
    clusters: int = 6             # k of the k-means over status values
    truncate_steps: int = 100     # a student episode begun from a snapshot is truncated this many steps later
    snapshot_steps: int = 100_000  # student agent steps with snapshot resets; env.reset afterwards
    status: str = "auto"          # critic: teacher's Q(s, pi(s)) | return_to_go | auto: critic if the teacher has one
    teacher_eval_mode: bool = False  # teacher acts with its mean action (the authors' teacher samples)

    def __post_init__(self) -> None:
        problems = [f"snapshot.{name} must be >= 1 (got {getattr(self, name)})"
                    for name in ("teacher_episodes", "best_episodes", "save_every", "clusters",
                                 "truncate_steps") if not getattr(self, name) >= 1]
        if self.snapshot_steps < 0:
            problems.append(f"snapshot.snapshot_steps must be >= 0 (got {self.snapshot_steps})")
        if self.best_episodes > self.teacher_episodes:
            problems.append(f"snapshot.best_episodes ({self.best_episodes}) cannot exceed "
                            f"snapshot.teacher_episodes ({self.teacher_episodes})")
        if self.status not in STATUS_KINDS:
            problems.append(f"snapshot.status must be one of {', '.join(STATUS_KINDS)} (got {self.status})")
        if not self.teacher and not self.store:
            problems.append("snapshot=s3rl needs snapshot.teacher=PATH (a robo_rl checkpoint of this task), "
                            "snapshot.teacher=scripted (arm tasks) or snapshot.store=PATH (saved snapshots)")
        if self.teacher and self.teacher != SCRIPTED and not Path(self.teacher).is_file():
            problems.append(f"snapshot.teacher {self.teacher} is not a file; pass a checkpoint "
                            "(<run dir>/checkpoints/latest.pt) or snapshot.teacher=scripted")
        if self.store and not Path(self.store).is_file():
            problems.append(f"snapshot.store {self.store} is not a file; pass a run's snapshots/store.pt")
        if self.teacher == SCRIPTED and self.status == "critic":
            problems.append("snapshot.teacher=scripted has no critic: use snapshot.status=return_to_go or auto")
        if problems:
            raise ValueError("; ".join(problems))


# ---------------------------------------------------------------------------------------------
# The store


@dataclass
class SnapshotStore:
    """Snapshots of the best teacher episodes, their statuses and status clusters."""

    task: str
    spaces: dict
    teacher: str
    states: list[Any] = field(default_factory=list)       # env.get_state() dicts
    statuses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # cluster of each snapshot
    origins: list[tuple[int, int]] = field(default_factory=list)  # (teacher episode, step) of each
    episode_returns: list[float] = field(default_factory=list)    # of the kept teacher episodes

    def __len__(self) -> int:
        return len(self.states)

    @property
    def clusters(self) -> list[np.ndarray]:
        """Snapshot indices per cluster (non-empty clusters, in label order)."""
        return [np.flatnonzero(self.labels == label) for label in np.unique(self.labels)]

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION, **self.__dict__}
        return write_atomically(path, lambda handle: torch.save(payload, handle))

    @classmethod
    def load(cls, path: Path) -> "SnapshotStore":
        path = Path(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # torch raises several types for truncated/corrupt zips
            raise SnapshotError(f"snapshot store {path} is unreadable ({type(exc).__name__}: {exc}); collect "
                                f"it again from the teacher (drop snapshot.store)") from exc
        if not isinstance(payload, dict) or payload.get("format") != STORE_FORMAT:
            raise SnapshotError(f"{path} is not a robo_rl snapshot store (a run's snapshots/{STORE_NAME})")
        payload.pop("format"), payload.pop("format_version")
        return cls(**payload)

    def check_fits(self, task: str, spaces: dict, where: str) -> None:
        from robo_rl.loops.common import spaces_mismatch

        if self.task != task:
            raise SnapshotError(f"{where} holds snapshots of task {self.task}, this run trains {task}; "
                                f"use a teacher/store of {task}")
        problem = spaces_mismatch(self.spaces, spaces)
        if problem:
            raise SnapshotError(f"{where} was made for other spaces ({problem}); use a teacher/store made "
                                f"with this run's task settings")


def cluster_labels(statuses: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """k-means labels of the 1-D statuses (k = min(clusters, distinct values))."""
    from sklearn.cluster import KMeans

    values = np.asarray(statuses, np.float64).reshape(-1, 1)
    k = min(clusters, len(np.unique(values)))
    if k <= 1:
        return np.zeros(len(values), np.int64)
    return KMeans(n_clusters=k, random_state=seed, n_init="auto").fit(values).labels_.astype(np.int64)


def discounted_to_go(rewards: list[float], gamma: float) -> np.ndarray:
    """G_t = sum_{j >= t} gamma^(j-t) r_j for every t of one episode."""
    to_go = np.zeros(len(rewards))
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        to_go[t] = running
    return to_go


Policy = Callable[[Any], np.ndarray]


def collect_snapshots(env, policy: Policy, cfg: S3RLConfig, run_seed: int, task: str, spaces: dict,
                      teacher: str, status_of: Callable[[list[Any]], np.ndarray] | None, gamma: float,
                      progress: bool = False) -> SnapshotStore:
    """Roll the teacher out on ``env`` and build the store. ``status_of(observations)`` is the
    teacher critic's value of each saved observation, or None for return-to-go statuses."""
    episodes = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.teacher_episodes, unit="episode", desc="teacher", dynamic_ncols=True)
    for episode in range(cfg.teacher_episodes):
        obs, _ = env.reset(seed=episode_seed(run_seed, TEACHER_EPISODES, episode))
        saved, rewards, step, done = [], [], 0, False
        while not done:
            if step % cfg.save_every == 0:
                saved.append((step, env.get_state(), obs))
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            rewards.append(float(reward))
            done = terminated or truncated
            step += 1
        episodes.append((float(sum(rewards)), saved, rewards))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(teacher_return=f"{episodes[-1][0]:.1f}", refresh=False)
    if bar is not None:
        bar.close()
    order = sorted(range(len(episodes)), key=lambda e: -episodes[e][0])[:cfg.best_episodes]
    store = SnapshotStore(task=task, spaces=spaces, teacher=teacher)
    statuses = []
    for e in sorted(order):
        ret, saved, rewards = episodes[e]
        store.episode_returns.append(ret)
        to_go = discounted_to_go(rewards, gamma) if status_of is None else None
        values = status_of([obs for _, _, obs in saved]) if status_of is not None else None
        for k, (step, state, _) in enumerate(saved):
            store.states.append(state)
            store.origins.append((e, step))
            statuses.append(float(values[k]) if values is not None else float(to_go[step]))
    store.statuses = np.asarray(statuses, np.float64)
    store.labels = cluster_labels(store.statuses, cfg.clusters, stream_seed(run_seed, SNAPSHOT_STARTS, 1))
    return store


# ---------------------------------------------------------------------------------------------
# The episode-start source


class SnapshotStarts:
    """S3RL's episode starts: a cluster-balanced snapshot for the first ``snapshot_steps`` agent
    steps (episodes truncated ``truncate_steps`` later), then ``fallback`` (env.reset)."""

    def __init__(self, store: SnapshotStore, cfg: S3RLConfig, run_seed: int, store_digest: str = ""):
        if not len(store):
            raise SnapshotError("the snapshot store is empty: the teacher saved no state")
        self.store, self.cfg = store, cfg
        self.clusters = store.clusters
        self.rng = np.random.default_rng(stream_seed(run_seed, SNAPSHOT_STARTS))
        self.fallback = ResetStarts(run_seed)
        self.store_digest = store_digest
        self.snapshot_resets = 0

    def sample(self) -> int:
        """A cluster uniformly, then one of its snapshots uniformly -> snapshot index."""
        cluster = self.clusters[int(self.rng.integers(len(self.clusters)))]
        return int(cluster[int(self.rng.integers(len(cluster)))])

    def start(self, env: Any, episode: int, step: int) -> EpisodeStart:
        if step >= self.cfg.snapshot_steps:
            begin = self.fallback.start(env, episode, step)
            begin.metrics = {"snapshot_start": 0.0}
            return begin
        index = self.sample()
        obs = env.set_state(self.store.states[index], new_episode=True)
        self.snapshot_resets += 1
        return EpisodeStart(obs, {"snapshot": index}, step_limit=self.cfg.truncate_steps,
                            metrics={"snapshot_start": 1.0,
                                     "snapshot_status": float(self.store.statuses[index])})

    kind = "s3rl"

    def state_dict(self) -> dict:
        return {"kind": self.kind, "run_seed": self.fallback.run_seed, "rng": self.rng.bit_generator.state,
                "snapshot_resets": self.snapshot_resets, "store_digest": self.store_digest}

    def load_state_dict(self, state: dict) -> None:
        check_start_kind(state, self.kind)
        if state["store_digest"] != self.store_digest:
            raise SnapshotError("the run's snapshot store differs from the one its checkpoint was trained "
                                "with; restore <run dir>/snapshots/store.pt or start a new run")
        self.fallback.load_state_dict({"run_seed": state["run_seed"]})
        self.rng.bit_generator.state = state["rng"]
        self.snapshot_resets = int(state["snapshot_resets"])


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Building it for a run


def teacher_policy(cfg: S3RLConfig, env, task: str, spaces: dict, device):
    """(policy, status_of or None, description) of the configured teacher, checked against the run."""
    if cfg.teacher == SCRIPTED:
        task_env = getattr(env.backend, "task", None)
        if task_env is None or not hasattr(task_env, "scripted_action"):
            raise SnapshotError(f"snapshot.teacher=scripted needs an arm task with a scripted policy "
                                f"(task={task}); pass a checkpoint instead")
        return (lambda obs: np.asarray(task_env.scripted_action(), np.float32)), None, SCRIPTED
    from omegaconf import OmegaConf

    from robo_rl.checkpoint import load_checkpoint
    from robo_rl.loops.common import spaces_mismatch
    from robo_rl.loops.evaluate import agent_from_checkpoint

    path = Path(cfg.teacher)
    payload = load_checkpoint(path)
    teacher_task = str(OmegaConf.create(payload["config"]).task.name)
    if teacher_task != task:
        raise SnapshotError(f"snapshot.teacher {path} was trained on {teacher_task}, this run trains {task}; "
                            f"use a teacher checkpoint of {task}")
    problem = spaces_mismatch(payload["spaces"], spaces)
    if problem:
        raise SnapshotError(f"snapshot.teacher {path} was trained with other spaces ({problem}); use a teacher "
                            f"trained with this run's task settings (obs_type, frame_stack, ...)")
    agent = agent_from_checkpoint(payload, path, env, device)
    teacher_step = int(payload["step"])
    use_critic = cfg.status in ("auto", "critic")

    def policy(obs):
        return agent.act(obs, step=teacher_step, eval_mode=cfg.teacher_eval_mode)

    def status_of(observations):
        batch = _stack(observations)
        return agent.critic_value(batch, agent.act(batch, eval_mode=True))

    return policy, (status_of if use_critic else None), f"{path} (step {teacher_step})"


def _stack(observations: list[Any]):
    if isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack(observations)


def make_snapshot_starts(snapshot_cfg: S3RLConfig, make_teacher_env: Callable[[], Any], run_dir: Path,
                         run_seed: int, task: str, spaces: dict, gamma: float, device,
                         progress: bool = False) -> SnapshotStarts:
    """The run's snapshot store (reused from the run dir, copied from snapshot.store, or rolled
    out from the teacher and written there first) and a sampler over it."""
    path = Path(run_dir) / "snapshots" / STORE_NAME
    if path.is_file():
        store = SnapshotStore.load(path)
        store.check_fits(task, spaces, str(path))
    elif snapshot_cfg.store:
        store = SnapshotStore.load(Path(snapshot_cfg.store))
        store.check_fits(task, spaces, f"snapshot.store {snapshot_cfg.store}")
        store.save(path)
    else:
        env = make_teacher_env()
        try:
            policy, status_of, description = teacher_policy(snapshot_cfg, env, task, spaces, device)
            message = (f"S3RL: rolling out teacher {description} for {snapshot_cfg.teacher_episodes} episodes "
                       f"(snapshot every {snapshot_cfg.save_every} steps)")
            log.info(message)
            print(f"robo-rl: {message}", file=sys.stderr, flush=True)
            store = collect_snapshots(env, policy, snapshot_cfg, run_seed, task, spaces, description,
                                      status_of, gamma, progress)
        finally:
            env.close()
        store.save(path)
    starts = SnapshotStarts(store, snapshot_cfg, run_seed, file_digest(path))
    returns = np.asarray(store.episode_returns)
    message = (f"S3RL: {len(store)} snapshots from {len(returns)} teacher episodes (return "
               f"{returns.mean():.1f}, min {returns.min():.1f}) in {len(starts.clusters)} status clusters "
               f"(sizes {[len(c) for c in starts.clusters]}); snapshot resets for the first "
               f"{snapshot_cfg.snapshot_steps} agent steps, truncated after {snapshot_cfg.truncate_steps}")
    log.info(message)
    print(f"robo-rl: {message}", file=sys.stderr, flush=True)
    return starts


def snapshot_config(node) -> S3RLConfig | None:
    """The run's S3RLConfig, or None for snapshot=none (or a config from before snapshots)."""
    if node is None or str(node.get("name", "none")) == "none":
        return None
    from omegaconf import DictConfig, OmegaConf

    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return S3RLConfig(**values)


__all__ = ["S3RLConfig", "NoSnapshotConfig", "SnapshotStore", "SnapshotStarts", "SnapshotError",
           "collect_snapshots", "cluster_labels", "discounted_to_go", "make_snapshot_starts",
           "snapshot_config"]
