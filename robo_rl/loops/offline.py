"""The offline training loop: learn from a dataset, no env steps except evaluation.

    robo-rl train mode=offline agent=a2pr task=gym/Hopper-v5 dataset=data/hopper-medium train.steps=100000

``train.steps`` counts gradient steps (learner updates); ``eval_every``, ``checkpoint_every``,
``log_every`` too. The dataset (robo_rl.offline.dataset) is checked against the task and for NaN/inf
before anything is written, opened read-only, and sampled with the learner's n_step and gamma.
Learners with a state normaliser (the TD3 family) fit it once to the dataset's states; it is saved
with them. Evaluations report the return and the normalised score (0 = random, 100 = expert: the
dataset's reference returns).

The run directory holds what an online run's does (config.yaml, train.log, train.csv, eval.csv,
tb/, learning_curve.png, checkpoints/latest.pt) except the replay: the dataset is the data. A
checkpoint holds the learner, the dataset sampler's RNG, torch's RNG and the step, so a killed run
resumes where it stopped (``resume=auto``) and continues exactly as an unbroken one would.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from robo_rl.agents import make_agent
from robo_rl.checkpoint import CheckpointError, save_checkpoint
from robo_rl.envs import make_env
from robo_rl.logger import RunLogger
from robo_rl.loops.common import describe_spaces, env_config, evaluate, resolve_device, set_threads, spaces_mismatch
from robo_rl.loops.online import (TrainResult, _attach_file_log, _checkpoint_to_resume, _progress, _StopRequests,
                                  checkpoint_path, detach_file_log, kept_checkpoint_name)
from robo_rl.offline.dataset import DatasetInfo, observation_stats, open_dataset
from robo_rl.seeding import REPLAY, TORCH, eval_seeds, stream_seed

log = logging.getLogger("robo_rl")


def eval_metrics(result, info: DatasetInfo | None) -> dict[str, float]:
    """An evaluation's metrics, with the normalised score when the dataset has references."""
    metrics = result.metrics()
    score = info.normalized_score(result.return_mean) if info is not None else None
    if score is not None:
        metrics["normalized_score"] = score
    return metrics


def train_offline(cfg: DictConfig, run_dir: Path) -> TrainResult:
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    set_threads(cfg.threads)
    t = cfg.train
    eval_env = make_env(env_config(cfg.task, cfg.seed), seed=cfg.seed)
    spaces = describe_spaces(eval_env.observation_space, eval_env.action_space)
    eval_episode_seeds = eval_seeds(cfg.seed, t.eval_episodes)

    ckpt_file = checkpoint_path(run_dir)
    payload = _checkpoint_to_resume(cfg.resume, ckpt_file)
    if payload is not None:
        problem = spaces_mismatch(payload["spaces"], spaces)
        saved = payload["config"]
        if problem or saved.get("mode") != "offline" or str(saved.get("dataset")) != str(cfg.dataset):
            raise CheckpointError(
                f"cannot resume {run_dir}: it was an {saved.get('mode', 'online')} run on dataset "
                f"{saved.get('dataset')} ({problem or 'same spaces'}); resume it with its own settings (see "
                f"{run_dir / 'config.yaml'}) or start a new run in another hydra.run.dir. Nothing was changed.")
    # Validated before the run dir is touched: a bad dataset leaves nothing behind.
    dataset, info = open_dataset(cfg.dataset, eval_env.observation_space, eval_env.action_space,
                                 str(cfg.task.name), int(cfg.agent.n_step), float(cfg.agent.gamma),
                                 seed=stream_seed(cfg.seed, REPLAY), device=device)

    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(stream_seed(cfg.seed, TORCH))
    agent = make_agent(cfg.agent, eval_env.observation_space, eval_env.action_space, device)
    step, evals = 0, []
    if payload is not None:
        try:
            agent.load_state_dict(payload["agent"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"cannot resume {run_dir}: the checkpoint's agent does not fit the config's "
                                  f"({exc}); use the run's own agent settings (see {run_dir / 'config.yaml'})") from exc
        dataset.load_state_dict(payload["dataset"])
        torch.set_rng_state(payload["torch_rng"])
        step, evals = int(payload["step"]), [tuple(e) for e in payload.get("evals", [])]
    fitted = False
    if payload is None and hasattr(agent, "fit_observation_stats"):
        fitted = agent.fit_observation_stats(*observation_stats(cfg.dataset))

    _attach_file_log(run_dir / "train.log")
    if fitted:
        log.info("state normaliser fitted to the dataset's %d transitions", len(dataset))
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    message = (f"{'resumed' if payload is not None else 'offline'} {run_dir} at gradient step {step} of {t.steps}: "
               f"dataset {cfg.dataset} ({info.kind}, {len(dataset)} transitions, {info.episodes} episodes; "
               f"reference returns random {info.random_return:.1f}, expert {info.expert_return:.1f})")
    log.info(message)
    print(f"robo-rl: {message}", file=sys.stderr, flush=True)
    logger = RunLogger(run_dir, resume_step=step if payload is not None else None)

    def save(at_step: int) -> Path:
        state = {"step": at_step, "agent": agent.state_dict(), "dataset": dataset.state_dict(),
                 "torch_rng": torch.get_rng_state(), "evals": evals, "spaces": spaces,
                 "dataset_info": {"kind": info.kind, "random_return": info.random_return,
                                  "expert_return": info.expert_return},
                 "config": OmegaConf.to_container(cfg, resolve=True)}
        if t.keep_every and at_step % t.keep_every == 0:
            save_checkpoint(ckpt_file.parent / kept_checkpoint_name(at_step), state)
        return save_checkpoint(ckpt_file, state)

    def run_eval(at_step: int) -> None:
        result = evaluate(agent, eval_env, t.eval_episodes, seeds=eval_episode_seeds)
        metrics = eval_metrics(result, info)
        evals.append((at_step, result.return_mean))
        logger.log("eval", at_step, metrics)
        logger.plot(f"{cfg.task.name} - {cfg.agent.name} offline on {Path(str(cfg.dataset)).name} (seed {cfg.seed})")
        score = metrics.get("normalized_score")
        message = (f"eval gradient step {at_step}: return {result.return_mean:.1f} +/- {result.return_std:.1f}"
                   + (f", normalised score {score:.1f}" if score is not None else ""))
        log.info(message)
        if bar is not None:
            bar.write(message)

    bar = _progress(t, step)
    stop = _StopRequests().install()
    try:
        if step == 0:
            run_eval(0)
            save(0)
        while step < t.steps:
            stop.check()
            metrics = agent.update(dataset, step)
            step += 1
            if step % t.log_every == 0:
                logger.log("train", step, metrics)
            if step % t.eval_every == 0:
                run_eval(step)
            if step % t.checkpoint_every == 0:
                save(step)
            if bar is not None and (step % t.log_every == 0 or step == t.steps):
                bar.update(step - bar.n)
        if not evals or evals[-1][0] != step:
            run_eval(step)
        final = save(step)
    except KeyboardInterrupt:
        log.warning("interrupted at gradient step %d: saving the checkpoint", step)
        save(step)
        raise
    finally:
        stop.uninstall()
        if bar is not None:
            bar.close()
        logger.close()
        eval_env.close()
        detach_file_log()
    normalized = [info.normalized_score(value) for _, value in evals]
    return TrainResult(run_dir=run_dir, steps=step, first_eval=evals[0][1], last_eval=evals[-1][1],
                       checkpoint=final, video=None, evals=evals, step_unit="gradient steps (offline)",
                       first_score=normalized[0], last_score=normalized[-1])
