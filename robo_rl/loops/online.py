"""The online training loop: act, store, update on schedule, evaluate, checkpoint, resume.

Everything the loop writes lands in the run directory:
    config.yaml          resolved config (written after validation, so a rejected run leaves nothing)
    train.log            human-readable log
    train.csv, eval.csv  metrics; tb/ TensorBoard; learning_curve.png redrawn at each evaluation
    plasticity.csv       dormant ratio and FAU of every network (robo_rl.plasticity), every plasticity.every steps
    videos/              eval_<step>.mp4 when train.video is on
    checkpoints/         latest.pt (atomic) - agent, optimizers, schedule, episode starts, RNGs, the
                         sampler state of every data source (replay and demos); step_<n>.pt every
                         train.keep_every steps when that is on
    replay/              transitions in append-only chunks (a crash loses at most one chunk)

Seams (docs/architecture.md): the learner (robo_rl.agents, the Learner protocol), the update
schedule (robo_rl.loops.schedule: updates per agent step, told each update's metrics and each
episode end), the episode-start source (robo_rl.loops.episodes: env.reset by default, snapshot
resets for S3RL) and the batch source (replay, or replay + demos mixed by ratio). Every random
stream comes from the run seed through robo_rl.seeding, so seeds give independent runs.
"""
from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from robo_rl.agents import make_agent
from robo_rl.agents.constraint import constraint_config
from robo_rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from robo_rl.envs import make_env
from robo_rl.logger import RunLogger
from robo_rl.plasticity import probe
from robo_rl.loops.common import (describe_spaces, env_config, evaluate, hardware_config, resolve_device,
                                  set_threads, spaces_mismatch)
from robo_rl.loops.episodes import EpisodeStartSource, ResetStarts
from robo_rl.loops.pacing import ControlPacer
from robo_rl.loops.realtime import (ActingCopy, ConcurrentLearner, EpisodeRate, RealtimeConfig, acting_learner_factory,
                                    control_period)
from robo_rl.loops.schedule import UpdateFeedback, UpdateSchedule, make_schedule
from robo_rl.replay import MixedSource, ReplayBuffer
from robo_rl.seeding import DEMOS, EXPLORATION, REPLAY, TORCH, eval_seeds, stream_seed
from robo_rl.snapshot import make_snapshot_starts, snapshot_config

log = logging.getLogger("robo_rl")

CHECKPOINT_NAME = "latest.pt"


class NonFiniteError(RuntimeError):
    """The agent or the environment produced NaN/inf; the replay on disk is left intact."""


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    first_eval: float | None
    last_eval: float | None
    checkpoint: Path | None
    video: Path | None
    evals: list[tuple[int, float]] = field(default_factory=list)
    learning_env_steps_per_s: float | None = None   # after seed steps, excluding eval/checkpoint time
    learning_updates_per_s: float | None = None
    step_unit: str = "agent steps"
    first_score: float | None = None   # normalised scores (0 random, 100 expert) with a dataset
    last_score: float | None = None
    first_success: float | None = None  # eval success rates, for tasks that report success
    last_success: float | None = None
    best_success: tuple[int, float] | None = None   # (step, rate) of the best evaluation
    stopped_early: str | None = None    # why the run ended before train.steps (train.stop_success_rate)
    control_hz: float | None = None     # realtime.enabled: achieved agent steps/s in episodes (mean)
    updates_per_step: float | None = None  # realtime.enabled: learner updates per agent step achieved

    def summary(self) -> str:
        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.1f}"

        lines = [
            f"robo_rl: trained {self.steps} {self.step_unit}",
            f"  eval return: first {fmt(self.first_eval)} -> last {fmt(self.last_eval)}",
        ]
        if self.last_score is not None:
            lines.append(f"  normalised:  first {fmt(self.first_score)} -> last {fmt(self.last_score)} "
                         f"(0 = random, 100 = expert)")
        if self.last_success is not None:
            best = f", best {self.best_success[1]:.2f} at step {self.best_success[0]}" if self.best_success else ""
            lines.append(f"  success:     first {self.first_success:.2f} -> last {self.last_success:.2f}{best}")
        if self.stopped_early:
            lines.append(f"  stopped:     {self.stopped_early}")
        if self.control_hz is not None:
            lines.append(f"  real time:   {fmt(self.control_hz)} agent steps/s in episodes, "
                         f"{self.updates_per_step:.2f} learner updates per agent step")
        if self.learning_env_steps_per_s is not None:
            lines.append(f"  speed:       {fmt(self.learning_env_steps_per_s)} env-steps/s, "
                         f"{fmt(self.learning_updates_per_s)} updates/s while learning")
        lines += [
            f"  run dir:     {self.run_dir}",
            f"  logs:        {self.run_dir / 'train.csv'}, {self.run_dir / 'eval.csv'}, {self.run_dir / 'tb'}",
            f"  curve:       {self.run_dir / 'learning_curve.png'}",
            f"  checkpoint:  {self.checkpoint}",
            f"  video:       {self.video if self.video else 'off (train.video=false)'}",
            f"  evaluate:    robo-rl eval checkpoint={self.checkpoint}",
        ]
        return "\n".join(lines)


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / CHECKPOINT_NAME


def kept_checkpoint_name(step: int) -> str:
    """File name of the checkpoint kept at ``step`` when ``train.keep_every`` is on."""
    return f"step_{step:08d}.pt"


def train(cfg: DictConfig, run_dir: Path, episode_starts: EpisodeStartSource | None = None,
          schedule: UpdateSchedule | None = None) -> TrainResult:
    """Train online as ``cfg`` says, in ``run_dir`` (resuming what is there). ``episode_starts``
    and ``schedule`` replace the defaults (env.reset with run-seeded episodes; the fixed
    ``train.replay_ratio``): their state is checkpointed with the rest."""
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    set_threads(cfg.threads)
    t = cfg.train

    # Every episode is reset with a seed of its own (robo_rl.seeding), so the env's construction
    # seed only matters for its action_space.sample().
    env = make_env(env_config(cfg.task, cfg.seed), seed=cfg.seed, hardware=hardware_config(cfg))
    # One robot is one env: a ROS 2 arm (hardware=twin|real) is evaluated on itself, and the
    # training episode an evaluation interrupts is closed there and a new one begins.
    robot_env = bool(getattr(env.backend, "shares_robot", False))
    eval_env = env if robot_env else make_env(env_config(cfg.task, cfg.seed), seed=cfg.seed)
    eval_episode_seeds = eval_seeds(cfg.seed, t.eval_episodes)  # disjoint from training episodes
    spaces = describe_spaces(env.observation_space, env.action_space)

    # Decide fresh vs resume and check the checkpoint before writing anything into the run dir.
    ckpt_file = checkpoint_path(run_dir)
    payload = _checkpoint_to_resume(cfg.resume, ckpt_file)
    if payload is not None:
        problem = spaces_mismatch(payload["spaces"], spaces)
        if problem:
            raise CheckpointError(
                f"cannot resume {run_dir}: the checkpoint was made for different spaces ({problem}). "
                f"The config's task differs from the run's; use the run's own task "
                f"(see {run_dir / 'config.yaml'}) or start a new run in another hydra.run.dir. "
                f"Nothing in the run dir was changed.")
        if not cfg.replay.persist and not cfg.replay.resume_without_replay:
            raise CheckpointError(
                f"cannot resume {run_dir} with replay.persist=false: the replay would restart empty and the "
                f"agent would continue on fresh data only. Resume with replay.persist=true (the run's replay "
                f"is in {run_dir / 'replay'} if it was persisted), start a new run in another hydra.run.dir, "
                f"or pass replay.resume_without_replay=true to continue without the old data. Nothing in "
                f"the run dir was changed.")

    if cfg.replay.demo_dir:
        # Recorded demos carry the task settings they were made with: other observations or rewards
        # are refused before the run dir is touched, unless mixing them is an explicit choice.
        from robo_rl.record import demo_settings_mismatch

        problem = demo_settings_mismatch(cfg.replay.demo_dir, env_config(cfg.task, cfg.seed))
        if problem and not cfg.replay.allow_demo_settings_mismatch:
            raise ValueError(f"{problem}: their observations or rewards would not be this run's. Record demos "
                             f"with the run's task settings (robo-rl record task=... with the same task.options), "
                             f"or pass replay.allow_demo_settings_mismatch=true to mix them anyway")
        if problem:
            log.warning("%s; mixing them anyway (replay.allow_demo_settings_mismatch=true)", problem)

    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(stream_seed(cfg.seed, TORCH))
    constraint = constraint_config(cfg.constraint)  # None for constraint=none
    agent = make_agent(cfg.agent, env.observation_space, env.action_space, device, constraint=constraint)
    replay = ReplayBuffer(
        env.observation_space, env.action_space, capacity=cfg.replay.capacity, n_step=cfg.agent.n_step,
        gamma=cfg.agent.gamma, frame_stack=cfg.task.frame_stack, directory=(run_dir / "replay") if
        cfg.replay.persist else None, chunk_size=cfg.replay.chunk_size, seed=stream_seed(cfg.seed, REPLAY),
        device=device, track_cost=constraint is not None)
    batch_source, demos, dataset_info = replay, None, None
    if cfg.get("dataset"):
        # Offline-to-online: the dataset is the second source of the mixer (RLPD-style, share
        # replay.demo_fraction), checked against the task first and sampled with the agent's n_step/gamma.
        from robo_rl.offline.dataset import open_dataset

        demos, dataset_info = open_dataset(cfg.dataset, env.observation_space, env.action_space, str(cfg.task.name),
                                           int(cfg.agent.n_step), float(cfg.agent.gamma),
                                           seed=stream_seed(cfg.seed, DEMOS), device=device)
        if replay.track_cost:
            raise ValueError(f"dataset={cfg.dataset} has no per-step costs, which constraint={cfg.constraint.name} "
                             f"needs; use constraint=none")
        batch_source = MixedSource(replay, demos, secondary_fraction=cfg.replay.demo_fraction)
    elif cfg.replay.demo_dir:
        # Data carries facts (rewards, flags); the learner decides how to use them: the demos are
        # sampled with the agent's n_step and gamma, whatever the run that wrote them used.
        demos = ReplayBuffer.load(cfg.replay.demo_dir, n_step=cfg.agent.n_step, gamma=cfg.agent.gamma,
                                  device=device, seed=stream_seed(cfg.seed, DEMOS),
                                  observation_space=env.observation_space, action_space=env.action_space)
        if demos.track_cost != replay.track_cost:
            raise ValueError(f"replay.demo_dir {cfg.replay.demo_dir} {'has' if demos.track_cost else 'has no'} "
                             f"per-step costs but constraint={cfg.constraint.name} "
                             f"{'needs' if replay.track_cost else 'does not use'} them; record the demos "
                             f"with the same constraint setting")
        batch_source = MixedSource(replay, demos, secondary_fraction=cfg.replay.demo_fraction)
    schedule = schedule if schedule is not None else make_schedule(t, cfg.get("schedule"))
    if episode_starts is None:
        snapshot_cfg = snapshot_config(cfg.get("snapshot"))
        episode_starts = ResetStarts(cfg.seed) if snapshot_cfg is None else make_snapshot_starts(
            snapshot_cfg, lambda: make_env(env_config(cfg.task, cfg.seed), seed=cfg.seed), run_dir, cfg.seed,
            str(cfg.task.name), spaces, float(cfg.agent.gamma), device, progress=bool(t.progress))
    action_rng = np.random.default_rng(stream_seed(cfg.seed, EXPLORATION))
    step, episode, episode_cost = 0, 0, 0.0
    evals: list[tuple[int, float]] = []
    eval_successes: list[tuple[int, float]] = []   # (step, success rate) for tasks that report success

    if payload is not None:
        try:
            agent.load_state_dict(payload["agent"])
        except (KeyError, RuntimeError, ValueError) as exc:  # other network sizes, constraint on/off
            raise CheckpointError(
                f"cannot resume {run_dir}: the checkpoint's agent does not fit the config's agent ({exc}). "
                f"Use the run's own agent and constraint settings (see {run_dir / 'config.yaml'}) or start "
                f"a new run in another hydra.run.dir. The run's config and data were not changed.") from exc
        if cfg.replay.persist:
            replay.load_from_disk()  # everything on disk, including transitions after the checkpoint
        replay.load_state_dict(payload["replay"])
        trained_with_demos = bool(payload["config"].get("replay", {}).get("demo_dir")
                                  or payload["config"].get("dataset"))
        if trained_with_demos != (demos is not None):
            raise CheckpointError(
                f"cannot resume {run_dir}: the run was trained {'with' if trained_with_demos else 'without'} "
                f"demos (replay.demo_dir={payload['config'].get('replay', {}).get('demo_dir')}) and the config "
                f"{'drops them' if trained_with_demos else 'adds some'}; use the run's own replay settings "
                f"(see {run_dir / 'config.yaml'}) or start a new run. Nothing was changed.")
        if demos is not None and "demo_replay" in payload:  # checkpoints before issue 6 lack it
            demos.load_state_dict(payload["demo_replay"])
        schedule.load_state_dict(payload["schedule"])
        if "episode_starts" in payload:
            episode_starts.load_state_dict(payload["episode_starts"])
        action_rng.bit_generator.state = payload["action_rng"]
        torch.set_rng_state(payload["torch_rng"])
        step, episode = int(payload["step"]), int(payload["episode"])
        ran_past_checkpoint = replay.num_slots_written > int(payload["replay"]["num_slots_written"])
        if payload.get("mid_episode") or ran_past_checkpoint:
            # Stopped mid-episode (Ctrl-C, SIGTERM, a checkpoint inside an episode, or killed after
            # the checkpoint with more transitions on disk): they are kept, but the episode cannot be
            # continued (a real robot's scene has moved on, and the replay closes an episode cut by a
            # stop), so the run goes on with the next episode: a fresh start state, never the
            # interrupted episode's again.
            episode += 1
        evals = [tuple(e) for e in payload.get("evals", [])]
        eval_successes = [tuple(e) for e in payload.get("eval_successes", [])]
    elif cfg.get("init_from"):
        init_learner_from(agent, cfg.init_from, spaces)
    if payload is None and cfg.replay.persist and replay.directory_has_data():
        # The run died before its first checkpoint: keep every transition it collected.
        replay.load_from_disk()
        warnings.warn(f"{run_dir} holds {len(replay)} replay transitions but no checkpoint; keeping them "
                      f"and starting the agent fresh")

    # Only now, with checkpoint, spaces and replay metadata checked, does the run dir change.
    _attach_file_log(run_dir / "train.log")
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    if payload is not None:
        message = (f"resumed {run_dir} at step {step} of {t.steps} (episode {episode}; replay holds "
                   f"{len(replay)} transitions" + (f", demos {len(demos)}" if demos is not None else "") + ")")
        log.info(message)
        print(f"robo-rl: {message}", file=sys.stderr, flush=True)
    logger = RunLogger(run_dir, resume_step=step if payload is not None else None)
    video_dir = run_dir / "videos"
    last_video: Path | None = None

    def save(at_step: int) -> Path:
        replay.flush()
        payload = {
            "step": at_step, "episode": episode, "mid_episode": obs is not None, "agent": agent.state_dict(),
            "replay": replay.state_dict(), "schedule": schedule.state_dict(),
            **({"demo_replay": demos.state_dict()} if demos is not None else {}),
            "episode_starts": episode_starts.state_dict(),
            "action_rng": action_rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "evals": evals, "eval_successes": eval_successes, "spaces": spaces,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        if t.keep_every and at_step % t.keep_every == 0:
            # Kept for later use (a "medium" policy for `robo-rl collect`, or picking an early stop);
            # never read by resume, which always continues from latest.pt.
            save_checkpoint(ckpt_file.parent / kept_checkpoint_name(at_step), payload)
        return save_checkpoint(ckpt_file, payload)

    def run_eval(at_step: int) -> None:
        nonlocal last_video
        want_video = bool(t.video)
        # The same start states at every evaluation (and after a resume): curves compare like with like.
        # Real time: the acting copy, held still, is the policy the robot runs.
        with acting.hold() if acting is not None else contextlib.nullcontext():
            result = evaluate(acting if acting is not None else agent, eval_env, t.eval_episodes,
                              record_video=want_video, video_size=t.video_size, seeds=eval_episode_seeds)
        evals.append((at_step, result.return_mean))
        metrics = result.metrics()
        if "success_rate" in metrics:
            eval_successes.append((at_step, metrics["success_rate"]))
        score = dataset_info.normalized_score(result.return_mean) if dataset_info is not None else None
        if score is not None:
            metrics["normalized_score"] = score
        logger.log("eval", at_step, metrics)
        logger.plot(f"{cfg.task.name} - {cfg.agent.name} (seed {cfg.seed})")
        if want_video and result.frames:
            from robo_rl.video import write_mp4

            last_video = write_mp4(video_dir / f"eval_{at_step:08d}.mp4", result.frames,
                                   fps=result.video_fps)
        message = f"eval step {at_step}: return {result.return_mean:.1f} +/- {result.return_std:.1f}"
        if "success_rate" in metrics:
            message += f", success {metrics['success_rate']:.2f}"
        log.info(message)
        if bar is not None:
            bar.write(message)

    bar = _progress(t, step)
    # Episodes start lazily at the top of the loop, so a checkpoint taken right after an episode
    # ends holds no half-begun episode and a resumed run starts exactly where an unbroken one would.
    obs, step_limit, episode_steps, episode_return, episode_success = None, None, 0, 0.0, None
    start_metrics: dict[str, float] = {}
    window_start, window_steps, window_updates = time.perf_counter(), 0, 0
    metrics: dict[str, float] = {}
    probe_every = int(cfg.plasticity.every) if cfg.get("plasticity") is not None else 0

    def probe_metrics(batch) -> dict[str, float]:
        # On the learner's own last minibatch: probing draws no sample and moves no RNG.
        return probe(agent, batch, cfg.plasticity.dormant_threshold, cfg.plasticity.dormant_after_activation).metrics()

    # Real time (realtime.enabled): the control thread acts with an acting copy and keeps the
    # control rate; a learner thread updates concurrently (robo_rl.loops.realtime).
    realtime = realtime_config(cfg)
    acting: ActingCopy | None = None
    learner: ConcurrentLearner | None = None
    pacer: ControlPacer | None = None
    data_lock = contextlib.nullcontext()
    if realtime is not None:
        acting = ActingCopy(agent, acting_learner_factory(make_agent, cfg.agent, env, device, constraint, cfg.seed))
        period = control_period(realtime, env)
        pacer = ControlPacer(period) if period is not None else None
    policy = acting if acting is not None else agent
    step_grid = pacer if pacer is not None else getattr(env.backend, "pacer", None)   # a ROS 2 arm's own
    episode_rate, updates_at_episode_start, rates = EpisodeRate(), 0, []
    due_eval = due_checkpoint = False   # real time: evaluations and checkpoints wait for the episode's end
    stop_reason = success_stop(eval_successes, t)
    # Steady-state speed: time spent in act/step/store/update after the seed steps only.
    learn_time, learn_steps, learn_updates = 0.0, 0, 0
    stop = _StopRequests().install()
    try:
        if realtime is not None:
            learner = ConcurrentLearner(agent, batch_source, replay, schedule, acting, realtime, cfg.agent.batch_size,
                                        probe_every, probe_metrics)
            data_lock = learner.data_lock
        if step == 0:
            run_eval(0)
            save(0)  # a crash from here on always has a checkpoint to resume from
            stop_reason = success_stop(eval_successes, t)
        while step < t.steps and stop_reason is None:
            stop.check()
            tick = time.perf_counter()
            if obs is None:
                begin = episode_starts.start(env, episode, step)
                obs, step_limit, episode_steps, episode_return = begin.obs, begin.step_limit, 0, 0.0
                episode_success = None
                start_metrics = begin.metrics
                with data_lock:
                    replay.reset(obs)
                if pacer is not None:
                    pacer.restart()   # the reset took its own time: a new grid
                episode_rate = EpisodeRate()
                updates_at_episode_start = learner.updates if learner is not None else 0
            if pacer is not None:
                pacer.wait()   # the next tick of the control grid
            if step < t.seed_steps:
                action = action_rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
            else:
                action = policy.act(obs, step=step, eval_mode=False)
            if not np.all(np.isfinite(action)):
                raise NonFiniteError(f"step {step}: the agent produced a non-finite action {action}")
            next_obs, reward, terminated, truncated, info = env.step(action)
            _check_finite(step, next_obs, reward)
            episode_steps += 1
            episode_return += float(reward)
            if "success" in info:
                episode_success = bool(episode_success) or bool(info["success"])
            if step_limit is not None and episode_steps >= step_limit and not terminated:
                truncated = True  # the episode-start source's limit (e.g. S3RL's truncate_steps)
            cost = None
            if constraint is not None:
                if constraint.cost_key not in info:
                    raise ValueError(f"constraint={cfg.constraint.name} reads info[{constraint.cost_key!r}] but the "
                                   f"task {cfg.task.name} does not report it (info keys: {sorted(info)}); "
                                   f"use a task with a cost (arm/*) or constraint=none")
                cost = float(info[constraint.cost_key])
            with data_lock:
                replay.add(action, reward, next_obs, terminated, truncated, cost=cost)
            episode_cost += cost if cost is not None else float(info.get("cost", math.nan))  # nan: no cost
            obs = next_obs

            if learner is None:
                updates = 0
                for _ in range(schedule.updates_at(step)):
                    if len(replay) >= cfg.agent.batch_size:
                        metrics = agent.update(batch_source, step)
                        updates += 1
                if updates:
                    schedule.observe(UpdateFeedback(step, updates, metrics, agent, batch_source))
                if probe_every and (step + 1) % probe_every == 0 and getattr(agent, "last_batch", None) is not None:
                    logger.log("plasticity", step + 1, probe_metrics(agent.last_batch))
            else:
                with learner.schedule_lock:
                    granted = schedule.updates_at(step)
                learner.grant(step, granted)
                learner.check()
                updates = 0   # counted per episode from the learner's own counter
            if learner is not None:
                episode_rate.tick()
            if step >= t.seed_steps:
                learn_time += time.perf_counter() - tick
                learn_steps += 1
                learn_updates += updates
            step += 1
            window_steps += 1
            window_updates += updates

            if terminated or truncated:
                episode += 1
                realtime_metrics: dict[str, float] = {}
                if learner is not None:
                    metrics = learner.metrics
                    episode_updates = learner.updates - updates_at_episode_start
                    learn_updates += episode_updates
                    window_updates += episode_updates
                    rates.append((episode_rate.hz(), episode_updates, episode_steps))
                    realtime_metrics = {"control_hz": episode_rate.hz(), "updates_per_step": episode_updates / episode_steps,
                                        "late_steps": float(step_grid.late_steps if step_grid is not None else 0),
                                        "dropped_updates": float(learner.dropped_updates())}
                    for probe_step, probe_row in learner.probes:
                        logger.log("plasticity", probe_step + 1, probe_row)
                    learner.probes.clear()
                with learner.schedule_lock if learner is not None else contextlib.nullcontext():
                    note = schedule.end_episode(episode)
                    schedule_metrics = schedule.metrics()
                logger.log("train", step, {"episode": episode, "episode_return": episode_return,
                                           "episode_length": episode_steps,
                                           **({"success": float(episode_success)} if episode_success is not None else {}),
                                           "episode_cost": episode_cost, **metrics, **schedule_metrics,
                                           **realtime_metrics, **start_metrics})
                if note:
                    log.info(note)
                    if bar is not None:
                        bar.write(note)
                obs, episode_cost = None, 0.0

            if learner is None:
                if step % t.eval_every == 0:
                    run_eval(step)
                    stop_reason = success_stop(eval_successes, t)
                    if robot_env and obs is not None:  # the arm moved on: the episode was cut
                        episode += 1
                        obs, episode_cost = None, 0.0
                if step % t.checkpoint_every == 0:
                    save(step)
            else:
                # Between episodes the arm waits for the next reset: evaluate and checkpoint there.
                due_eval = due_eval or step % t.eval_every == 0
                due_checkpoint = due_checkpoint or step % t.checkpoint_every == 0
                if obs is None and due_eval:
                    run_eval(step)
                    stop_reason = success_stop(eval_successes, t)
                    due_eval = False
                if obs is None and due_checkpoint:
                    with learner.paused():
                        save(step)
                    due_checkpoint = False
            if bar is not None and (step % t.log_every == 0 or step == t.steps):
                elapsed = time.perf_counter() - window_start
                bar.set_postfix(env_sps=f"{window_steps * cfg.task.action_repeat / elapsed:.0f}",
                                upd_s=f"{window_updates / elapsed:.0f}",
                                eval=f"{evals[-1][1]:.1f}" if evals else "-", refresh=False)
                bar.update(window_steps)
                window_start, window_steps, window_updates = time.perf_counter(), 0, 0
        if learner is not None:
            learner.close()   # no update after the final evaluation and checkpoint
            learner.check()
        if stop_reason is not None:
            log.info("stopping at step %d: %s", step, stop_reason)
            if bar is not None:
                bar.write(f"stopping at step {step}: {stop_reason}")
        if not evals or evals[-1][0] != step:
            run_eval(step)
        final_ckpt = save(step)
    except KeyboardInterrupt:
        # A lab stopping a session by hand keeps everything: checkpoint + replay up to this step.
        log.warning("interrupted at step %d: saving checkpoint and replay", step)
        if learner is not None:
            learner.close()
        save(step)
        raise
    except BaseException:
        # NaN, a simulator crash, CUDA OOM...: keep every transition collected so far.
        if learner is not None:
            learner.close()
        try:
            replay.flush()
        except Exception:
            log.exception("could not flush the replay to disk")
        raise
    finally:
        stop.uninstall()
        if learner is not None:
            learner.close()
        if bar is not None:
            bar.close()
        logger.close()
        env.close()
        if eval_env is not env:
            eval_env.close()
        detach_file_log()

    result = TrainResult(run_dir=run_dir, steps=step, first_eval=evals[0][1] if evals else None,
                         last_eval=evals[-1][1] if evals else None, checkpoint=final_ckpt, video=last_video,
                         evals=evals,
                         learning_env_steps_per_s=(learn_steps * cfg.task.action_repeat / learn_time)
                         if learn_time > 0 else None,
                         learning_updates_per_s=learn_updates / learn_time if learn_time > 0 else None,
                         stopped_early=stop_reason)
    if eval_successes:
        result.first_success, result.last_success = eval_successes[0][1], eval_successes[-1][1]
        result.best_success = max(eval_successes, key=lambda e: (e[1], -e[0]))
    measured = [(hz, updates, steps) for hz, updates, steps in rates if math.isfinite(hz)]
    if measured:
        result.control_hz = float(np.mean([hz for hz, _, _ in measured]))
        result.updates_per_step = sum(u for _, u, _ in measured) / sum(n for _, _, n in measured)
    return result


def realtime_config(cfg: DictConfig) -> RealtimeConfig | None:
    """The run's RealtimeConfig when realtime.enabled, else None."""
    node = cfg.get("realtime")
    if node is None or not node.get("enabled", False):
        return None
    values = OmegaConf.to_object(node) if isinstance(node, DictConfig) else node
    return values if isinstance(values, RealtimeConfig) else RealtimeConfig(**values)


def success_stop(eval_successes: list[tuple[int, float]], t: DictConfig) -> str | None:
    """Why the run stops on success (train.stop_success_rate reached by the last
    train.stop_success_evals evaluations in a row), or None."""
    threshold = t.get("stop_success_rate")
    needed = int(t.get("stop_success_evals", 1))
    if threshold is None or len(eval_successes) < needed:
        return None
    last = eval_successes[-needed:]
    if all(rate >= threshold for _, rate in last):
        return (f"eval success rate >= {threshold:g} in the last {needed} evaluation(s) "
                f"({', '.join(f'{rate:.2f} at step {at}' for at, rate in last)}; train.stop_success_rate)")
    return None


def init_learner_from(agent, path: str, spaces: dict) -> list[str]:
    """Start ``agent`` from another run's checkpoint (offline-to-online: an A2PR or TD3+BC run
    initialises an online run). The same learner class loads everything (networks, optimisers,
    normaliser); another learner of the TD3 family takes every network both have with the same
    shapes (a TD3 run from A2PR needs A2PR's layer sizes). Returns the networks taken."""
    from robo_rl.agents import AGENTS
    from robo_rl.agents.td3 import TD3Learner

    payload = load_checkpoint(path)
    problem = spaces_mismatch(payload["spaces"], spaces)
    if problem:
        raise CheckpointError(f"init_from={path} was trained with other spaces ({problem}); use a checkpoint of "
                              f"this task")
    source_name = payload["config"]["agent"]["name"]
    source_class = AGENTS[source_name][1] if source_name in AGENTS else None
    if source_class is type(agent):
        agent.load_state_dict(payload["agent"])
        taken = sorted(agent.networks())
    elif isinstance(agent, TD3Learner) and source_class is not None and issubclass(source_class, TD3Learner):
        saved, taken, differ = payload["agent"]["networks"], [], []
        for name, module in agent.networks().items():
            if name not in saved:
                continue
            mine = {key: tuple(value.shape) for key, value in module.state_dict().items()}
            theirs = {key: tuple(value.shape) for key, value in saved[name].items()}
            if mine != theirs:
                differ.append(name)
                continue
            module.load_state_dict(saved[name])
            taken.append(name)
        if differ or "actor" not in taken:
            raise CheckpointError(f"init_from={path} ({source_name}): networks {differ or ['actor']} differ in shape "
                                  f"from agent={agent.cfg.name}'s; set the layer sizes to the checkpoint's "
                                  f"(agent.hidden_dims, agent.actor_hidden_dims as in its config.yaml)")
    else:
        raise CheckpointError(f"init_from={path} holds a {source_name} learner, which cannot initialise "
                              f"agent={agent.cfg.name}: use the same agent, or a TD3-family agent (td3, td3_bc, "
                              f"a2pr) from a TD3-family checkpoint")
    log.info("initialised the learner from %s (%s: %s)", path, source_name, ", ".join(taken))
    return taken


class _StopRequests:
    """Ctrl-C / SIGTERM ask the loop to stop at the next step boundary, so the checkpoint and the
    replay agree on what was collected; a second signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt(f"signal {signum} (second)")
        self.requested = signum

    def install(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def check(self) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt(f"signal {self.requested}")

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def _checkpoint_to_resume(resume: Any, ckpt_file: Path) -> dict | None:
    mode = str(resume).lower()
    if mode not in ("auto", "true", "false"):
        raise ValueError(f"resume must be auto, true or false (got {resume!r})")
    exists = ckpt_file.exists()
    if mode == "true" and not exists:
        raise CheckpointError(f"resume=true but {ckpt_file} does not exist; point hydra.run.dir at the run "
                              f"to continue, or drop resume=true to start fresh")
    if mode == "false" and exists:
        raise CheckpointError(f"{ckpt_file.parent.parent} already holds a run (checkpoint {ckpt_file}); "
                              f"pass resume=true to continue it or choose another hydra.run.dir. "
                              f"Nothing was overwritten.")
    return load_checkpoint(ckpt_file) if exists else None


def _check_finite(step: int, obs: Any, reward: float) -> None:
    values = obs.values() if isinstance(obs, dict) else (obs,)
    for value in values:
        if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.all(np.isfinite(value)):
            raise NonFiniteError(f"step {step}: the environment returned a non-finite observation; "
                                 f"the transition was not stored")
    if not math.isfinite(float(reward)):
        raise NonFiniteError(f"step {step}: the environment returned a non-finite reward {reward}; "
                             f"the transition was not stored")


def _progress(t: DictConfig, step: int):
    if not t.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=t.steps, initial=step, unit="step", dynamic_ncols=True, desc="train")


def detach_file_log() -> None:
    """End a run's train.log: what this process logs next (another run) goes elsewhere."""
    for handler in list(log.handlers):
        if isinstance(handler, logging.FileHandler):
            log.removeHandler(handler)
            handler.close()


def _attach_file_log(path: Path) -> None:
    detach_file_log()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the console shows the progress bar and eval lines instead
