"""`robo-rl record` (robo_rl.record): what it stores is what the simulator did, failed episodes are
dropped unless asked for, a killed recording continues to the unbroken one, a foreign out dir is
refused untouched, each teleop source turns its input into the hand-computed actions, and the
demos mix into `robo-rl train` batches with the agent's n_step and gamma."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import pty
import termios
import threading
import time

import numpy as np
import pytest
import yaml

from robo_rl.cli import config_dir
from robo_rl.envs import make_env
from robo_rl.offline.collect import scripted_policy
from robo_rl.offline.dataset import read_episodes
from robo_rl.record import RecordError, RecordRunConfig, TeleopError, compose_record_config, demo_seed, \
    read_demo_info, record
from robo_rl.record import recorder as recorder_module
from robo_rl.record.ros_teleop import RosTeleopConfig, joy_to_six_dof, twist_to_six_dof
from robo_rl.record.spacemouse import SpaceMouse, SpaceMouseConfig, open_spacemouse, parse_report
from robo_rl.loops.pacing import ControlPacer
from robo_rl.record.teleop import ActionLayout, KeyboardConfig, KeyboardTeleop, TerminalKeys, episode_event
from robo_rl.replay import ReplayBuffer
from robo_rl.seeding import EVAL_EPISODES, TRAIN_EPISODES, episode_seed
from tests.conftest import episodes_equal, run_cli

TASK = "arm/reach"
SHORT = "task.max_episode_steps=7"  # scripted reach needs 4-15 steps: attempts 2, 5, 7, 8 fail at this limit


def cfg_for(out, *extra) -> RecordRunConfig:
    return compose_record_config([f"task={TASK}", f"out={out}", "progress=false", "chunk_size=16", *extra])


def facts(info, drop=("recorded_at",)):
    return [{k: v for k, v in e.items() if k not in drop} for e in info.episodes]


def file_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def scripted_demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos") / "reach"
    return out, record(cfg_for(out, "episodes=3", SHORT))


def test_record_yaml_equals_the_schema():
    values = {k: v for k, v in yaml.safe_load((config_dir() / "record.yaml").read_text()).items()
              if k not in ("defaults", "hydra")}
    defaults = {}
    for f in dataclasses.fields(RecordRunConfig):
        if f.name in ("task", "hardware"):  # config groups
            continue
        defaults[f.name] = (f.default if f.default is not dataclasses.MISSING else
                            dataclasses.asdict(f.default_factory()))
    assert values == defaults   # out: ??? (required) in both


def test_scripted_demos_are_what_the_simulator_did_and_round_trip(scripted_demos):
    out, info = scripted_demos
    assert [e["attempt"] for e in info.episodes] == [0, 1, 3]  # attempt 2 fails within 7 steps: dropped
    assert (info.attempts, info.failed, info.discarded) == (4, 1, 0)
    assert all(e["success"] and e["source"] == "scripted" and e["operator"] for e in info.episodes)
    assert read_demo_info(out).episodes == info.episodes  # demos.json holds the facts

    # The replay's own loader gives every transition back (n_step=1: one per step).
    demos = ReplayBuffer.load(out)
    assert len(demos) == sum(e["length"] for e in info.episodes)
    episodes = list(read_episodes(out))
    env = make_env(compose_record_config([f"task={TASK}", "out=x", SHORT]).task, seed=0)
    policy = scripted_policy(env, TASK)
    try:
        for fact, episode in zip(info.episodes, episodes):
            assert fact["seed"] == demo_seed(0, fact["attempt"])
            obs, _ = env.reset(seed=fact["seed"])
            np.testing.assert_array_equal(episode.observations[0], obs)
            for t in range(len(episode)):
                action = policy(obs)
                obs, reward, terminated, truncated, _ = env.step(action)
                np.testing.assert_array_equal(episode.actions[t], action)
                assert episode.rewards[t] == np.float32(reward)
            assert terminated and len(episode) == fact["length"]
            assert episode.rewards.astype(np.float64).sum() == pytest.approx(fact["return"], rel=1e-6)
    finally:
        env.close()


def test_failed_episodes_are_kept_only_with_keep_failed(scripted_demos, tmp_path):
    _, kept_only = scripted_demos
    info = record(cfg_for(tmp_path / "all", "episodes=3", "keep_failed=true", SHORT))
    assert [(e["attempt"], e["success"]) for e in info.episodes] == [(0, True), (1, True), (2, False)]
    assert info.attempts == 3 and info.failed == 0
    episodes = list(read_episodes(tmp_path / "all"))
    assert episodes[2].truncations[-1] and not episodes[2].terminations[-1]  # the time limit ended it
    # the same seeds give the same episodes whether or not failures are kept
    same = [e for e in facts(info) if e["success"]]
    assert [{k: v for k, v in e.items() if k not in ("index", "first_slot")} for e in same] == \
        [{k: v for k, v in e.items() if k not in ("index", "first_slot")} for e in facts(kept_only)[:2]]


@pytest.mark.parametrize("kill_point", ["after_flush", "before_flush"])
def test_a_killed_recording_continues_to_the_unbroken_one(scripted_demos, tmp_path, monkeypatch, kill_point):
    out, unbroken = scripted_demos
    broken = tmp_path / "broken"
    original = recorder_module._write_episode
    calls = {"n": 0}

    def killed_on_second_episode(path, buffer, info, attempt, episode_facts):
        calls["n"] += 1
        if calls["n"] == 2:
            if kill_point == "before_flush":  # facts noted as pending, no slot written
                info.pending = episode_facts
                recorder_module.write_demo_info(path, info)
            else:                             # slots on disk, demos.json not yet updated
                original(path, buffer, info, attempt, episode_facts)
            raise KeyboardInterrupt
        original(path, buffer, info, attempt, episode_facts)

    monkeypatch.setattr(recorder_module, "_write_episode", killed_on_second_episode)
    with pytest.raises(KeyboardInterrupt):
        record(cfg_for(broken, "episodes=3", SHORT))
    monkeypatch.setattr(recorder_module, "_write_episode", original)
    assert len(read_demo_info(broken).episodes) == 1 and read_demo_info(broken).pending is not None
    resumed = record(cfg_for(broken, "episodes=3", SHORT))
    assert facts(resumed) == facts(unbroken)
    assert (resumed.attempts, resumed.failed, resumed.pending) == (unbroken.attempts, unbroken.failed, None)
    episodes_equal(list(read_episodes(out)), list(read_episodes(broken)))
    # a finished recording run again records nothing; a larger episodes= adds to it
    assert facts(record(cfg_for(broken, "episodes=3", SHORT))) == facts(unbroken)
    grown = record(cfg_for(broken, "episodes=4", SHORT))
    assert [e["attempt"] for e in grown.episodes] == [0, 1, 3, 4]
    assert len(ReplayBuffer.load(broken)) == sum(e["length"] for e in grown.episodes)  # capacity grew with it


def test_an_out_dir_of_other_data_is_refused_untouched(scripted_demos, tmp_path):
    out, _ = scripted_demos
    before = file_bytes(out)
    with pytest.raises(RecordError, match="holds demos of task arm/reach, not arm/push"):
        record(compose_record_config(["task=arm/push", f"out={out}", "progress=false", "chunk_size=16"]))
    with pytest.raises(RecordError, match=r"other settings \(seed differ"):
        record(cfg_for(out, "episodes=3", SHORT, "seed=1"))
    with pytest.raises(RecordError, match=r"other settings \(task.options.rotation_action differ"):
        record(cfg_for(out, "episodes=3", SHORT, "task.options.rotation_action=true"))
    assert file_bytes(out) == before
    # a training run's replay (no demos.json) is not a recording either
    env = make_env(cfg_for(out).task, seed=0)
    replay = ReplayBuffer(env.observation_space, env.action_space, capacity=64, directory=tmp_path / "replay",
                          chunk_size=16)
    replay.reset(env.reset(seed=0)[0])
    replay.flush()
    env.close()
    before = file_bytes(tmp_path / "replay")
    with pytest.raises(RecordError, match="is not a demo recording"):
        record(cfg_for(tmp_path / "replay"))
    assert file_bytes(tmp_path / "replay") == before


def test_two_seeds_share_no_start_state():
    starts = {seed: [demo_seed(seed, a) for a in range(500)] for seed in (0, 1)}
    assert not set(starts[0]) & set(starts[1])
    others = {episode_seed(0, stream, i) for stream in (TRAIN_EPISODES, EVAL_EPISODES) for i in range(500)}
    assert not set(starts[0]) & others
    env = make_env(cfg_for("x").task, seed=0)
    first = [env.reset(seed=starts[seed][0])[0] for seed in (0, 1)]
    env.close()
    assert not np.array_equal(*first)


class ScriptedKeys:
    """Key bytes as a terminal would deliver them: one chunk per read()."""

    def __init__(self, chunks):
        self.chunks = list(chunks)

    def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def test_keyboard_source_records_the_pressed_keys(tmp_path):
    keys = ScriptedKeys([
        b"ww",       # episode 0 starts: presses made before it are dropped
        b"w",        # +x for hold_steps=2 steps
        b"",
        b"",         # released
        b"ad",       # the later of a/d wins: -y
        b"r i",      # +z, then space stops everything, then +rx
        b"u",        # +rz beside the held +rx
        b"\r",       # Enter: end (kept: keep_failed)
        b"",         # episode 1
        b"x",        # discarded before a step
        b"",         # episode 2
        b"s",
        b"q",        # quit: the step so far is kept, recording stops
    ])
    cfg = cfg_for(tmp_path / "kb", "source=keyboard", "episodes=5", "keep_failed=true", "pace=false",
                  "keyboard.hold_steps=2", "keyboard.speed=0.5", "task.options.rotation_action=true",
                  "operator=alice")
    info = record(cfg, keys=keys)
    h = 0.5
    expected = [[h, 0, 0, 0, 0, 0], [h, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, -h, 0, 0, 0, 0],
                [0, 0, 0, h, 0, 0], [0, 0, 0, h, 0, h]]
    episodes = list(read_episodes(tmp_path / "kb"))
    assert len(episodes) == 2
    np.testing.assert_array_equal(episodes[0].actions, np.array(expected, np.float32))
    np.testing.assert_array_equal(episodes[1].actions, np.array([[-h, 0, 0, 0, 0, 0]], np.float32))
    assert episodes[0].truncations[-1] and episodes[1].truncations[-1]  # ended by the operator: bootstraps
    assert (info.attempts, info.discarded) == (3, 1)
    assert [(e["attempt"], e["source"], e["operator"], e["length"]) for e in info.episodes] == \
        [(0, "keyboard", "alice", 6), (2, "keyboard", "alice", 1)]


def test_keyboard_gripper_and_stiffness_entries():
    layout = ActionLayout(size=8, rotation=True, stiffness=6, gripper=7)
    teleop = KeyboardTeleop(ScriptedKeys([b"", b"c w", b"v", b"j"]), layout, KeyboardConfig(speed=1.0, hold_steps=1),
                            stiffness=0.25, gripper_start=1.0)
    teleop.begin_episode()
    assert teleop.command().action.tolist() == [1, 0, 0, 0, 0, 0, 0.25, -1]
    assert teleop.command().action.tolist() == [0, 0, 0, 0, 0, 0, 0.25, 1]
    assert teleop.command().action.tolist() == [0, 0, 0, 0, 1, 0, 0.25, 1]
    assert [episode_event(k) for k in (b"w", b"\n", b"\x7f", b"x\rq")] == [None, "end", "discard", "quit"]
    with pytest.raises(KeyboardInterrupt):
        episode_event(b"w\x03")


def test_terminal_keys_read_a_pseudo_terminal_in_cbreak_mode():
    master, slave = pty.openpty()
    try:
        lflag = termios.tcgetattr(slave)[3]
        with TerminalKeys(slave) as keys:
            mode = termios.tcgetattr(slave)[3]
            assert not mode & termios.ICANON and not mode & termios.ECHO and mode & termios.ISIG
            assert keys.read() == b""
            os.write(master, b"wa\r")  # no newline needed: cbreak hands over every key at once
            deadline, got = time.monotonic() + 2.0, b""
            while len(got) < 3 and time.monotonic() < deadline:
                got += keys.read()
            assert got in (b"wa\r", b"wa\n")  # Enter: CR, or NL where the terminal maps CR to NL (ICRNL)
        assert termios.tcgetattr(slave)[3] == lflag  # restored
        with pytest.raises(TeleopError, match="not one"):
            TerminalKeys(os.open(os.devnull, os.O_RDONLY))
    finally:
        os.close(master)
        os.close(slave)


def test_pacer_steps_on_a_fixed_grid():
    now, slept = [10.0], []
    pacer = ControlPacer(0.1, clock=lambda: now[0], sleep=slept.append)
    pacer.wait()            # starts the grid at 10.0
    now[0] = 10.03
    pacer.wait()            # next point 10.1
    now[0] = 10.25          # late by 0.05: the grid restarts here
    pacer.wait()
    now[0] = 10.26
    pacer.wait()            # next point 10.35
    assert slept == pytest.approx([0.07, 0.09]) and pacer.late_steps == 1


def le16(*values) -> list[int]:
    return list(np.array(values, "<i2").tobytes())


def test_spacemouse_reports_parse_to_the_hand_computed_numbers():
    assert parse_report([1, 0x5E, 0x01, 0xA2, 0xFE, 0x00, 0x00]) == ({0: 350, 1: -350, 2: 0}, None)
    assert parse_report([2, *le16(-1, 2, 32767)]) == ({3: -1, 4: 2, 5: 32767}, None)
    assert parse_report([1, *le16(10, 20, 30, 40, 50, 60)]) == ({0: 10, 1: 20, 2: 30, 3: 40, 4: 50, 5: 60}, None)
    assert parse_report([3, 0b10, 0]) == ({}, 2)
    assert parse_report([9, 1, 2]) == ({}, None) and parse_report([]) == ({}, None)

    class FakeHid:  # hidapi's read(): one queued report per call, [] once none is left this poll
        def __init__(self, polls):
            self.polls, self.current = [list(p) for p in polls], None

        def read(self, size):
            if self.current is None:
                self.current = self.polls.pop(0) if self.polls else []
            if not self.current:
                self.current = None
                return []
            return self.current.pop(0)

    cfg = SpaceMouseConfig(full_scale=400.0, deadzone=0.1)  # default signs: y and z (and ry, rz) flipped
    mouse = SpaceMouse(FakeHid([[[1, *le16(200, -400, 20)], [2, *le16(-100, 800, 0)], [3, 0b10, 0]],
                                [],
                                [[1, *le16(0, 0, -200, 0, 0, 100)], [3, 0b01, 0]]]), cfg)
    six, gripper = mouse.read()
    assert six.tolist() == [0.5, 1.0, 0.0, -0.25, -1.0, 0.0] and gripper == 1.0  # z=0.05 < deadzone
    six, gripper = mouse.read()  # no report: the puck holds where it was
    assert six.tolist() == [0.5, 1.0, 0.0, -0.25, -1.0, 0.0]
    six, gripper = mouse.read()
    assert six.tolist() == [0.0, 0.0, 0.5, 0.0, 0.0, -0.25] and gripper == -1.0
    swapped = SpaceMouse(FakeHid([[[1, *le16(200, -400, 20)]]]),
                         SpaceMouseConfig(full_scale=400.0, axis_map=[1, 0, 2, 3, 4, 5], axis_signs=[1.0] * 6))
    assert swapped.read()[0].tolist() == [-1.0, 0.5, 0.0, 0.0, 0.0, 0.0]


def test_spacemouse_source_records_its_actions(tmp_path):
    class FakeHid:
        def __init__(self):
            self.reports = [[1, *le16(200, -400, 20)]]

        def read(self, size):
            return self.reports.pop(0) if self.reports else []

    cfg = cfg_for(tmp_path / "sm", "source=spacemouse", "episodes=1", "keep_failed=true", "pace=false",
                  "task.max_episode_steps=3", "spacemouse.full_scale=400")
    info = record(cfg, keys=ScriptedKeys([]), motion=SpaceMouse(FakeHid(), cfg.spacemouse))
    np.testing.assert_array_equal(list(read_episodes(tmp_path / "sm"))[0].actions,
                                  np.array([[0.5, 1.0, 0.0]] * 3, np.float32))
    assert info.episodes[0]["source"] == "spacemouse"


def test_spacemouse_without_hidapi_or_a_device_says_how_to_fix_it(monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "hid", None)  # `import hid` fails as if not installed
    with pytest.raises(TeleopError, match=r"pip install 'robo_rl\[teleop\]'"):
        open_spacemouse(SpaceMouseConfig())
    fake = types.SimpleNamespace(enumerate=lambda: [{"vendor_id": 0x046D, "product_id": 1, "product_string": "Mouse",
                                                     "path": b"/dev/hidraw0"}], device=None)
    monkeypatch.setitem(sys.modules, "hid", fake)
    with pytest.raises(TeleopError, match="no SpaceMouse found.*udev"):
        open_spacemouse(SpaceMouseConfig())

    class Unopenable:
        def open_path(self, path):
            raise OSError("open failed")

    fake.enumerate = lambda: [{"vendor_id": 0x256F, "product_id": 0xC635, "product_string": "SpaceMouse Compact",
                               "path": b"/dev/hidraw3"}]
    fake.device = Unopenable
    with pytest.raises(TeleopError, match=r"cannot open the SpaceMouse 'SpaceMouse Compact' at /dev/hidraw3.*udevadm"):
        open_spacemouse(SpaceMouseConfig())


def test_twist_and_joy_messages_scale_to_actions():
    cfg = RosTeleopConfig(max_linear=0.2, max_angular=0.5, joy_axes=[1, 0, 4, -1, -1, 7],
                          joy_signs=[1.0, -1.0, 1.0, 1.0, 1.0, 1.0])
    assert twist_to_six_dof((0.1, -0.4, 0.05), (0.25, 0.0, -1.0), cfg).tolist() == [0.5, -1.0, 0.25, 0.5, 0.0, -1.0]
    axes = [0.5, -0.25, 0.0, 0.0, 1.0]  # index 7 is absent: 0
    assert joy_to_six_dof(axes, cfg).tolist() == [-0.25, -0.5, 1.0, 0.0, 0.0, 0.0]


ROS_DOMAIN = 77  # this module's own: loopback discovery, nothing else on it


@contextlib.contextmanager
def twist_publisher(monkeypatch, topic: str, linear: tuple[float, float, float]):
    """A node in this process publishing one Twist at 50 Hz on ROS_DOMAIN until the block ends."""
    rclpy = pytest.importorskip("rclpy")
    from geometry_msgs.msg import Twist

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(ROS_DOMAIN))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ROS_DOMAIN)
    node = rclpy.create_node("record_test_teleop", context=context)
    publisher = node.create_publisher(Twist, topic, 10)
    message = Twist()
    message.linear.x, message.linear.y, message.linear.z = linear
    stop = threading.Event()

    def publish():
        while not stop.is_set():
            publisher.publish(message)
            time.sleep(0.02)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        node.destroy_node()
        context.try_shutdown()


@pytest.mark.parametrize("hardware", ["none", "twin"])
def test_ros_twist_source_records_the_published_command(tmp_path, monkeypatch, hardware):
    """Twist on a loopback topic -> actions; with hardware=twin the episode runs through the ROS 2
    env client against the twin and controller processes (which pace it)."""
    topic = "/record_test/twist"
    with twist_publisher(monkeypatch, topic, (0.05, -0.2, 0.025)):
        cfg = cfg_for(tmp_path / "ros", "source=ros", "episodes=1", "keep_failed=true", "task.max_episode_steps=4",
                      f"hardware={hardware}", f"hardware.domain_id={ROS_DOMAIN}" if hardware != "none" else
                      f"ros.domain_id={ROS_DOMAIN}", f"ros.topic={topic}", "ros.max_linear=0.1")
        info = record(cfg, keys=ScriptedKeys([]))
    np.testing.assert_array_equal(list(read_episodes(tmp_path / "ros"))[0].actions,
                                  np.array([[0.5, -1.0, 0.25]] * 4, np.float32))
    assert (info.episodes[0]["source"], info.episodes[0]["env"]) == ("ros", "sim" if hardware == "none" else hardware)


def test_recorded_demos_mix_into_training_with_the_agents_n_step(tmp_path, monkeypatch):
    from robo_rl.config_schema import compose_train_config
    from robo_rl.loops import online, run_training
    from robo_rl.replay.mixed import MixedSource

    out = tmp_path / "demos"
    done = run_cli("record", f"task={TASK}", "episodes=3", f"out={out}", "progress=false", "seed=3")
    assert done.returncode == 0, done.stderr
    assert "3 episodes kept" in done.stdout and f"replay.demo_dir={out}" in done.stdout
    bad = run_cli("record", f"task={TASK}", "source=joystick", f"out={tmp_path / 'bad'}")
    assert bad.returncode == 2 and bad.stderr.startswith("robo-rl: error:") and "source must be one of" in bad.stderr
    assert not (tmp_path / "bad").exists()

    drawn = []

    class SpyMixedSource(MixedSource):
        def sample(self, batch_size):
            batch = super().sample(batch_size)
            drawn.append((self.secondary, batch))
            return batch

    monkeypatch.setattr(online, "MixedSource", SpyMixedSource)
    n_step, gamma, batch_size, fraction = 3, 0.9, 16, 0.25
    cfg = compose_train_config([
        f"task={TASK}", "agent.hidden_dims=[32,32]", f"agent.batch_size={batch_size}", f"agent.n_step={n_step}",
        f"agent.gamma={gamma}", "train.steps=60", "train.seed_steps=50", "train.eval_every=60",
        "train.eval_episodes=1", "train.checkpoint_every=60", "train.log_every=20", "train.video=false",
        "train.progress=false", "threads=1", "device=cpu", "replay.chunk_size=64", f"replay.demo_dir={out}",
        f"replay.demo_fraction={fraction}"])
    run_training(cfg, tmp_path / "run")
    assert drawn
    demos, batch = drawn[-1]
    assert (demos.n_step, demos.gamma) == (n_step, gamma)
    demo_rows = round(fraction * batch_size)
    assert len(batch) == batch_size

    # Each demo row is an n-step transition of a recorded episode, by hand from its rewards.
    episodes = list(read_episodes(out))
    for row in range(batch_size - demo_rows, batch_size):
        obs = batch.obs[row].numpy()
        where = [(e, t) for e in episodes for t in range(len(e)) if np.array_equal(e.observations[t], obs)]
        assert len(where) == 1, "a demo row must be one recorded observation"
        episode, t = where[0]
        m = min(n_step, len(episode) - t)
        expected = sum(gamma ** j * float(episode.rewards[t + j]) for j in range(m))
        ended = bool(episode.terminations[t:t + m].any())
        np.testing.assert_array_equal(batch.action[row].numpy(), episode.actions[t])
        assert batch.reward[row].item() == pytest.approx(expected, rel=1e-5)
        assert batch.discount[row].item() == pytest.approx(0.0 if ended else gamma ** m)
        np.testing.assert_array_equal(batch.next_obs[row].numpy(), episode.observations[t + m])


def test_demos_recorded_with_other_task_settings_are_refused_by_training(scripted_demos, tmp_path):
    """Lesson 6: demos whose observations/rewards came from other task settings (here the goal
    offset in cm instead of m) are not mixed in silently; the explicit flag allows it."""
    from robo_rl.loops import run_training
    from tests.conftest import compose_train_cfg

    out, _ = scripted_demos
    small = ["task=arm/reach", f"replay.demo_dir={out}", "agent.hidden_dims=[16,16]", "agent.batch_size=8",
             "train.steps=20", "train.seed_steps=10", "train.eval_every=20", "train.eval_episodes=1",
             "train.video=false", "train.progress=false", "threads=1", "plasticity.every=0"]
    with pytest.raises(ValueError, match=r"goal_obs_scale: demos 1\.0, run 0\.01.*allow_demo_settings_mismatch"):
        run_training(compose_train_cfg(small + ["task.options.goal_obs_scale=0.01"]), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()   # refused before anything was written
    result = run_training(compose_train_cfg(small + ["task.options.goal_obs_scale=0.01",
                                                     "replay.allow_demo_settings_mismatch=true"]), tmp_path / "allowed")
    assert result.steps == 20
