"""End-to-end CLI behaviour: a short train + eval, and every bad-input path."""
from __future__ import annotations

import shutil

import pytest

from conftest import SMALL_TRAIN, run_cli, tree_snapshot


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "r"
    proc = run_cli("train", *SMALL_TRAIN, "train.video=true", "train.video_size=64", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


def test_train_writes_every_output_and_prints_a_summary(trained_run):
    run_dir, proc = trained_run
    for name in ["config.yaml", "train.log", "train.csv", "eval.csv", "learning_curve.png",
                 "checkpoints/latest.pt"]:
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "videos").glob("*.mp4")), "eval video missing"
    assert list((run_dir / "tb").iterdir()), "tensorboard log missing"
    assert list((run_dir / "replay").iterdir()), "replay chunks missing"
    assert "eval return: first" in proc.stdout and str(run_dir) in proc.stdout
    evals = (run_dir / "eval.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in evals[1:]] == ["0", "150", "300"]


def test_eval_reports_returns_and_saves_video(trained_run, tmp_path):
    run_dir, _ = trained_run
    video = tmp_path / "v.mp4"
    proc = run_cli("eval", f"checkpoint={run_dir / 'checkpoints/latest.pt'}", "episodes=2", "video=true",
                   "video_size=64", f"video_path={video}", "threads=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "return:" in proc.stdout and "over 2 episodes" in proc.stdout
    assert video.stat().st_size > 1000


@pytest.mark.parametrize("override,expected", [
    ("task=dmc/cheetah_rum", "dmc/cheetah_run"),    # typo: close match suggested, valid list shown
    ("agent=sacc", "sac"),
])
def test_unknown_names_list_the_valid_ones(override, expected, tmp_path):
    proc = run_cli("train", override, f"hydra.run.dir={tmp_path / 'x'}")
    assert proc.returncode != 0
    assert "unknown" in proc.stderr and expected in proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("override,needle", [
    ("agent.batch_size=0", "batch_size"),
    ("agent.critic_steps_per_update=0", "critic_steps_per_update"),
    ("train.steps=0", "train.steps"),
    ("replay.demo_fraction=2", "demo_fraction"),
    ("train.replay_ratio=-1", "replay_ratio"),
])
def test_invalid_values_rejected_before_work(override, needle, tmp_path):
    run_dir = tmp_path / "x"
    proc = run_cli("train", *SMALL_TRAIN, override, f"hydra.run.dir={run_dir}")
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_unknown_key_rejected(tmp_path):
    proc = run_cli("train", *SMALL_TRAIN, "train.stepz=5", f"hydra.run.dir={tmp_path / 'x'}")
    assert proc.returncode != 0
    assert "stepz" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("override,needle", [
    ("train.steps=abc", "train.steps"),
    ("agent.lr=fast", "agent.lr"),
    ("task.action_repeat=1.5", "task.action_repeat"),
    ("replay.persist=maybe", "replay.persist"),
])
def test_wrong_types_are_named_without_a_traceback(override, needle, tmp_path):
    proc = run_cli("train", override, f"hydra.run.dir={tmp_path / 'x'}")
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "robo-rl: error:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_unwritable_run_dir_is_one_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_cli("train", *SMALL_TRAIN, f"hydra.run.dir={blocker / 'run'}")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and str(blocker) in proc.stderr, proc.stderr
    assert proc.stderr.count("robo-rl: error:") == 1


def test_renamed_key_names_the_new_one(tmp_path):
    proc = run_cli("train", "agent.utd=2", f"hydra.run.dir={tmp_path / 'x'}")
    assert proc.returncode == 2
    assert "agent.utd was renamed to agent.critic_steps_per_update" in proc.stderr


def test_debug_flag_shows_the_traceback(tmp_path):
    import os

    os.environ["ROBO_RL_DEBUG"] = "1"
    try:
        proc = run_cli("train", *SMALL_TRAIN, "train.steps=0", f"hydra.run.dir={tmp_path / 'x'}")
    finally:
        del os.environ["ROBO_RL_DEBUG"]
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "train.steps must be > 0" in proc.stderr


def test_truncated_checkpoint_gives_clear_error_and_is_not_overwritten(trained_run, tmp_path):
    run_dir, _ = trained_run
    copy = tmp_path / "r"
    shutil.copytree(run_dir, copy)
    ckpt = copy / "checkpoints" / "latest.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    before = tree_snapshot(copy)
    proc = run_cli("eval", f"checkpoint={ckpt}", "episodes=1")
    assert proc.returncode != 0 and "truncated or corrupt" in proc.stderr
    proc = run_cli("train", *SMALL_TRAIN, "train.steps=450", f"hydra.run.dir={copy}")
    assert proc.returncode != 0 and "truncated or corrupt" in proc.stderr
    assert tree_snapshot(copy) == before


def test_resume_with_other_spaces_is_refused_and_run_dir_untouched(trained_run, tmp_path):
    run_dir, _ = trained_run
    copy = tmp_path / "r"
    shutil.copytree(run_dir, copy)
    before = tree_snapshot(copy)
    proc = run_cli("train", *SMALL_TRAIN, "task=dmc/cheetah_run", "train.steps=450", f"hydra.run.dir={copy}")
    assert proc.returncode != 0
    assert "different spaces" in proc.stderr
    assert tree_snapshot(copy) == before


def test_resume_false_on_existing_run_refuses_to_overwrite(trained_run, tmp_path):
    run_dir, _ = trained_run
    copy = tmp_path / "r"
    shutil.copytree(run_dir, copy)
    before = tree_snapshot(copy)
    proc = run_cli("train", *SMALL_TRAIN, "resume=false", f"hydra.run.dir={copy}")
    assert proc.returncode != 0 and "resume=true" in proc.stderr
    assert tree_snapshot(copy) == before


def _start_train(run_dir, *extra):
    import os
    import subprocess
    import sys

    from conftest import REPO

    return subprocess.Popen([sys.executable, "-m", "robo_rl.cli", "train", *SMALL_TRAIN, *extra,
                             f"hydra.run.dir={run_dir}"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})


def _wait_for(predicate, proc, timeout=120.0):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the run")


def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path):
    import signal

    from robo_rl.checkpoint import load_checkpoint
    from robo_rl.replay import ReplayBuffer

    run_dir = tmp_path / "r"
    proc = _start_train(run_dir, "train.steps=100000", "train.checkpoint_every=100000", "train.eval_every=100000")
    _wait_for(lambda: len(list((run_dir / "replay").glob("chunk_*"))) >= 3, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "resume=true" in err
    saved = load_checkpoint(run_dir / "checkpoints/latest.pt")
    assert saved["step"] >= 3 * 64
    assert len(ReplayBuffer.load(run_dir / "replay")) == saved["step"]  # flushed: nothing lost

    proc = run_cli("train", *SMALL_TRAIN, f"train.steps={saved['step'] + 40}", "resume=true",
                   f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the console says where the run continues, not only train.log
    assert f"resumed {run_dir} at step {saved['step']}" in proc.stderr
    assert load_checkpoint(run_dir / "checkpoints/latest.pt")["step"] == saved["step"] + 40


def test_sigkill_loses_at_most_one_chunk_and_resumes(tmp_path):
    import signal

    from robo_rl.checkpoint import load_checkpoint
    from robo_rl.replay import ReplayBuffer

    run_dir = tmp_path / "r"
    proc = _start_train(run_dir, "train.steps=100000", "train.checkpoint_every=128", "train.eval_every=100000")
    _wait_for(lambda: len(list((run_dir / "replay").glob("chunk_*"))) >= 4, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    chunks = len(list((run_dir / "replay").glob("chunk_*")))
    on_disk = len(ReplayBuffer.load(run_dir / "replay"))
    saved = load_checkpoint(run_dir / "checkpoints/latest.pt")  # the last complete one
    assert on_disk >= saved["step"]
    assert on_disk >= (chunks - 1) * 64  # only the chunk being filled was lost

    proc = run_cli("train", *SMALL_TRAIN, f"train.steps={saved['step'] + 40}", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert load_checkpoint(run_dir / "checkpoints/latest.pt")["step"] == saved["step"] + 40
    assert len(ReplayBuffer.load(run_dir / "replay")) >= on_disk + 40 - 1


def test_multirun_with_joblib_runs_each_seed_in_its_own_dir(tmp_path):
    proc = run_cli("train", "-m", "seed=0,1", "hydra/launcher=joblib", *SMALL_TRAIN, "train.steps=60",
                   "train.seed_steps=40", "train.eval_every=60", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert runs == ["0_dmc-cartpole_swingup_sac_s0", "1_dmc-cartpole_swingup_sac_s1"]
    for run in runs:
        assert (tmp_path / run / "checkpoints/latest.pt").is_file()


def test_pixel_training_runs_end_to_end(tmp_path):
    run_dir = tmp_path / "px"
    proc = run_cli("train", *SMALL_TRAIN, "task.obs_type=pixels", "task.image_size=48", "train.steps=60",
                   "train.seed_steps=40", "train.eval_every=60", "agent.batch_size=8",
                   "agent.encoder.num_layers=2", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained 60 agent steps" in proc.stdout
    proc = run_cli("eval", f"checkpoint={run_dir / 'checkpoints/latest.pt'}", "episodes=1")
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_energy_constraint_switches_the_arm_tasks_tank_on():
    """The env the CLI's config builds has the tank (it trained without one before)."""
    from conftest import compose_train_cfg
    from robo_rl.envs import make_env
    from robo_rl.loops.common import env_config

    for constraint, has_tank in (("energy", True), ("none", False)):
        cfg = compose_train_cfg([f"task=arm/contact_maze", f"constraint={constraint}"])
        assert cfg.task.options.energy_tank is has_tank
        env = make_env(env_config(cfg.task, 0), seed=0)
        try:
            assert (env.unwrapped.backend._env.tank is not None) is has_tank
            obs, _ = env.reset(seed=1)
            _, _, _, _, info = env.step(env.action_space.sample())
            assert ("tank_energy" in info) is has_tank
        finally:
            env.close()


def test_energy_constraint_needs_a_task_that_reports_cost(tmp_path):
    proc = run_cli("train", *SMALL_TRAIN, "constraint=energy", f"hydra.run.dir={tmp_path / 'x'}")
    assert proc.returncode != 0
    assert "info['cost']" in proc.stderr and "constraint=none" in proc.stderr


def test_energy_constraint_trains_and_logs_cost_on_an_arm_task(tmp_path):
    run_dir = tmp_path / "arm"
    proc = run_cli("train", *SMALL_TRAIN, "task=arm/reach", "constraint=energy", "train.steps=160",
                   "train.seed_steps=60", "train.eval_every=160", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    header = (run_dir / "train.csv").read_text().splitlines()[0].split(",")
    assert {"episode_cost", "lambda", "cost_q", "critic_loss"} <= set(header)
