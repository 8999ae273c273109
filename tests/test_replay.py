"""Replay buffer: n-step targets, frame de-dup vs naive stacking, persistence, mixing, input checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from robo_rl.replay import Batch, MixedSource, ReplayBuffer, ReplayDataError

torch.set_num_threads(1)

ACTION_SPACE = spaces.Box(-1.0, 1.0, (2,), np.float32)
ID_SPACE = spaces.Box(-np.inf, np.inf, (1,), np.float32)  # state obs = the slot's id


# ---------------------------------------------------------------------------- helpers
def all_rows_by_id(buffer: ReplayBuffer, batch_size: int = 4000) -> tuple[Batch, np.ndarray, np.ndarray]:
    """One large batch, its row ids (via ``ids_of``) and the index of the first row per id."""
    batch = buffer.sample(batch_size)
    ids = ids_of(batch.obs)
    _, first_rows = np.unique(ids, return_index=True)
    return batch, ids, first_rows


def ids_of(obs) -> np.ndarray:
    if isinstance(obs, dict):
        return obs["state"][:, 0].numpy().astype(np.int64)
    if obs.dtype == torch.uint8:
        return frame_ids(obs.numpy()[:, -FRAME_SHAPE[0]:])
    return obs[:, 0].numpy().astype(np.int64)


FRAME_SHAPE = (3, 8, 8)


def frame_ids(frames: np.ndarray) -> np.ndarray:
    """Each test frame carries its slot id in its first four bytes."""
    flat = np.ascontiguousarray(frames).reshape(len(frames), -1)
    return flat[:, :4].copy().view(np.uint32)[:, 0].astype(np.int64)


class NaiveRecorder:
    """Feeds scripted episodes to a buffer and keeps, per slot, the naive frame stack and step."""

    def __init__(self, buffer: ReplayBuffer, stack: int, seed: int, dict_obs: bool):
        self.buffer, self.stack, self.dict_obs = buffer, stack, dict_obs
        self.rng = np.random.default_rng(seed)
        self.slots: list[dict] = []  # slot id == index == the buffer's global slot index

    def _new_frame(self) -> np.ndarray:
        frame = self.rng.integers(0, 256, FRAME_SHAPE, dtype=np.uint8)
        frame.reshape(-1)[:4] = np.array([len(self.slots)], np.uint32).view(np.uint8)
        return frame

    def _obs(self, frames: list[np.ndarray]):
        pixels = np.concatenate(frames[-self.stack:])
        if self.dict_obs:
            return {"pixels": pixels, "state": np.array([len(self.slots), 0.5], np.float32)}
        return pixels

    def episode(self, length: int, end: str) -> None:
        """``end``: 'terminated', 'truncated' or 'abandoned' (next reset comes without an end)."""
        frames = [self._new_frame()] * self.stack  # naive stacking repeats the first frame
        episode_start = len(self.slots)
        obs = self._obs(frames)
        self.buffer.reset(obs)
        self.slots.append(dict(obs=obs, episode_start=episode_start, action=None))
        for t in range(length):
            action = self.rng.uniform(-1, 1, 2).astype(np.float32)
            reward = np.float32(self.rng.normal())
            terminated = end == "terminated" and t == length - 1
            truncated = end == "truncated" and t == length - 1
            self.slots[-1].update(action=action, reward=reward, terminated=terminated, truncated=truncated)
            frames = frames + [self._new_frame()]
            obs = self._obs(frames)
            self.buffer.add(action, reward, obs, terminated, truncated)
            self.slots.append(dict(obs=obs, episode_start=episode_start, action=None))

    def expected(self, slot: int, n_step: int, gamma: float):
        """(reward, discount, next slot) of the n-step transition from ``slot``, or None if its
        window is not closed. Plain loop, independent of the buffer's vectorised code."""
        total, steps = 0.0, 0
        while steps < n_step:
            record = self.slots[slot + steps]
            if record["action"] is None:
                return None
            total += gamma**steps * float(record["reward"])
            steps += 1
            if record["terminated"]:
                return total, 0.0, slot + steps
            if record["truncated"]:
                break
        return total, gamma**steps, slot + steps

    def expected_valid(self, capacity: int) -> set[int]:
        oldest_held = len(self.slots) - capacity
        valid = set()
        for slot, record in enumerate(self.slots):
            target = self.expected(slot, self.buffer.n_step, self.buffer.gamma)
            oldest_frame = max(record["episode_start"], slot - self.stack + 1)
            if target is not None and oldest_frame >= oldest_held:
                valid.add(slot)
        return valid

    def check(self, buffer: ReplayBuffer) -> None:
        """Every valid transition is sampled, and each equals the naive one bit for bit."""
        valid = self.expected_valid(buffer.capacity)
        assert len(buffer) == len(valid)
        batch, ids, rows = all_rows_by_id(buffer)
        assert set(ids.tolist()) == valid
        for row in rows:
            slot = int(ids[row])
            reward, discount, next_slot = self.expected(slot, buffer.n_step, buffer.gamma)
            for got, want in ((batch.obs, self.slots[slot]["obs"]), (batch.next_obs, self.slots[next_slot]["obs"])):
                if self.dict_obs:
                    assert np.array_equal(got["pixels"][row].numpy(), want["pixels"])
                    assert np.array_equal(got["state"][row].numpy(), want["state"])
                else:
                    assert np.array_equal(got[row].numpy(), want)
            assert np.array_equal(batch.action[row].numpy(), self.slots[slot]["action"])
            assert batch.reward[row].item() == pytest.approx(reward, rel=1e-6, abs=1e-6)
            assert batch.discount[row].item() == pytest.approx(discount, rel=1e-7)


def pixel_space(stack: int) -> spaces.Box:
    return spaces.Box(0, 255, (FRAME_SHAPE[0] * stack, *FRAME_SHAPE[1:]), np.uint8)


def pixel_state_space(stack: int) -> spaces.Dict:
    return spaces.Dict({"pixels": pixel_space(stack), "state": spaces.Box(-np.inf, np.inf, (2,), np.float32)})


def run_id_episode(buffer: ReplayBuffer, first_id: int, rewards, end: str) -> None:
    buffer.reset(np.array([first_id], np.float32))
    for t, reward in enumerate(rewards):
        last = t == len(rewards) - 1
        buffer.add(np.zeros(2, np.float32), reward, np.array([first_id + t + 1], np.float32),
                   terminated=last and end == "terminated", truncated=last and end == "truncated")


def targets_by_id(buffer: ReplayBuffer) -> dict[int, tuple[float, float, int]]:
    batch, ids, rows = all_rows_by_id(buffer, batch_size=2000)
    return {int(ids[r]): (batch.reward[r].item(), batch.discount[r].item(), int(batch.next_obs[r, 0].item()))
            for r in rows}


# ---------------------------------------------------------------------------- n-step targets
def test_n_step_targets_hand_computed():
    # Episode A (ids 0..4): rewards 1,2,3,4, terminated on its 4th step.
    # Episode B (ids 10..14): rewards 1,1,1,1, truncated on its 4th step. gamma = 0.5.
    def build(n_step):
        buffer = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100, n_step=n_step, gamma=0.5)
        run_id_episode(buffer, 0, [1.0, 2.0, 3.0, 4.0], "terminated")
        run_id_episode(buffer, 10, [1.0, 1.0, 1.0, 1.0], "truncated")
        return buffer

    three = targets_by_id(build(3))
    assert three == {
        0: (1 + 0.5 * 2 + 0.25 * 3, 0.125, 3),  # full window
        1: (2 + 0.5 * 3 + 0.25 * 4, 0.0, 4),    # termination on the window's last step
        2: (3 + 0.5 * 4, 0.0, 4),               # termination inside the window
        3: (4.0, 0.0, 4),
        10: (1.75, 0.125, 13),
        11: (1.75, 0.125, 14),                  # truncation on the last step still bootstraps
        12: (1.5, 0.25, 14),                    # window cut to 2 steps by truncation
        13: (1.0, 0.5, 14),
    }
    one = targets_by_id(build(1))
    assert one == {0: (1.0, 0.5, 1), 1: (2.0, 0.5, 2), 2: (3.0, 0.5, 3), 3: (4.0, 0.0, 4),
                   10: (1.0, 0.5, 11), 11: (1.0, 0.5, 12), 12: (1.0, 0.5, 13), 13: (1.0, 0.5, 14)}


def test_open_episode_waits_for_full_window_and_abandoned_tail_is_never_sampled():
    buffer = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100, n_step=3, gamma=0.5)
    run_id_episode(buffer, 0, [1.0, 1.0, 1.0, 1.0], "open")  # 4 steps, no end
    assert set(targets_by_id(buffer)) == {0, 1}  # windows from 2 and 3 are still open
    run_id_episode(buffer, 10, [2.0], "terminated")  # reset abandons episode 0..4
    assert set(targets_by_id(buffer)) == {0, 1, 10}


# ---------------------------------------------------------------------------- frame de-dup
@pytest.mark.parametrize("n_step", [1, 3])
def test_frame_dedup_equals_naive_stacking_through_wraparound(n_step):
    stack, capacity = 3, 40
    buffer = ReplayBuffer(pixel_space(stack), ACTION_SPACE, capacity=capacity, n_step=n_step, gamma=0.9,
                          frame_stack=stack, seed=1)
    recorder = NaiveRecorder(buffer, stack, seed=2, dict_obs=False)
    script = [(1, "terminated"), (6, "truncated"), (2, "truncated"), (13, "terminated"), (5, "abandoned"),
              (30, "truncated"), (4, "terminated"), (45, "truncated"), (7, "terminated"), (3, "abandoned"),
              (9, "truncated")]
    for length, end in script:
        recorder.episode(length, end)
        recorder.check(buffer)
    assert len(recorder.slots) > 3 * capacity  # wrapped several times


def test_dict_pixels_state_round_trip():
    stack = 2
    buffer = ReplayBuffer(pixel_state_space(stack), ACTION_SPACE, capacity=30, n_step=2, gamma=0.8,
                          frame_stack=stack, seed=3)
    recorder = NaiveRecorder(buffer, stack, seed=4, dict_obs=True)
    for length, end in [(5, "terminated"), (17, "truncated"), (3, "abandoned"), (12, "terminated")]:
        recorder.episode(length, end)
        recorder.check(buffer)
    batch = buffer.sample(4)
    assert batch.obs["pixels"].dtype == torch.uint8 and batch.obs["state"].dtype == torch.float32
    assert batch.obs["pixels"].shape == (4, 6, 8, 8)


def test_pixel_memory_is_one_frame_per_slot():
    stack, capacity = 3, 1000
    dedup = ReplayBuffer(pixel_space(stack), ACTION_SPACE, capacity=capacity, frame_stack=stack)
    frame_bytes = int(np.prod(FRAME_SHAPE))
    per_slot_overhead = (dedup.nbytes - capacity * frame_bytes) / capacity
    assert per_slot_overhead < 32  # action (8) + reward (4) + episode start (8) + 4 flags
    not_deduped = ReplayBuffer(pixel_space(stack), ACTION_SPACE, capacity=capacity, frame_stack=1)
    assert not_deduped.nbytes - dedup.nbytes == capacity * frame_bytes * (stack - 1)


def test_inconsistent_frame_stack_is_rejected():
    stack = 3
    buffer = ReplayBuffer(pixel_space(stack), ACTION_SPACE, capacity=50, frame_stack=stack)
    frame = np.zeros(FRAME_SHAPE, np.uint8)
    with pytest.raises(ValueError, match="dtype float32"):
        buffer.reset(np.zeros(pixel_space(stack).shape, np.float32))
    with pytest.raises(ValueError, match="first frame repeated"):
        buffer.reset(np.concatenate([frame, frame, frame + 1]))
    buffer.reset(np.concatenate([frame] * 3))
    with pytest.raises(ValueError, match="naive stacking"):  # new frame put first instead of last
        buffer.add(np.zeros(2), 0.0, np.concatenate([frame + 1, frame, frame]), False, False)
    with pytest.raises(ValueError, match="divisible"):
        ReplayBuffer(spaces.Box(0, 255, (8, 8, 8), np.uint8), ACTION_SPACE, capacity=50, frame_stack=3)


# ---------------------------------------------------------------------------- wrap-around
def test_wraparound_never_samples_overwritten_windows():
    capacity, n_step = 10, 3
    buffer = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=capacity, n_step=n_step, gamma=0.9)
    run_id_episode(buffer, 0, [1.0] * 24, "open")  # slots 0..24, ring holds 15..24
    # Windows [g, g+3] must lie in 15..24: g in 15..21.
    assert set(targets_by_id(buffer)) == set(range(15, 22))
    assert len(buffer) == 7


# ---------------------------------------------------------------------------- bad input
def test_nan_or_inf_is_rejected_and_buffer_unchanged():
    space = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (2,), np.float32)})
    good = ReplayBuffer(space, ACTION_SPACE, capacity=20, n_step=2, seed=5)
    reference = ReplayBuffer(space, ACTION_SPACE, capacity=20, n_step=2, seed=5)
    for buffer in (good, reference):
        buffer.reset({"state": np.zeros(2, np.float32)})
        for t in range(4):
            buffer.add(np.full(2, 0.1 * t), float(t), {"state": np.full(2, t + 1.0, np.float32)}, False, False)
    cases = [
        ((np.array([np.nan, 0.0]), 0.0, {"state": np.zeros(2, np.float32)}), "action"),
        ((np.zeros(2), 0.0, {"state": np.array([0.0, np.inf], np.float32)}), r"next_obs\['state'\]"),
        ((np.zeros(2), float("nan"), {"state": np.zeros(2, np.float32)}), "reward"),
        ((np.zeros(3), 0.0, {"state": np.zeros(2, np.float32)}), "action has shape"),
    ]
    for (action, reward, next_obs), field in cases:
        with pytest.raises(ValueError, match=field):
            good.add(action, reward, next_obs, False, False)
    assert len(good) == len(reference) and good.num_slots_written == reference.num_slots_written
    for a, b in zip((good.sample(16), good.sample(16)), (reference.sample(16), reference.sample(16))):
        assert torch.equal(a.obs["state"], b.obs["state"]) and torch.equal(a.reward, b.reward)
    # The episode is still open and continues normally.
    good.add(np.zeros(2), 1.0, {"state": np.ones(2, np.float32)}, True, False)
    with pytest.raises(RuntimeError, match="reset"):
        good.add(np.zeros(2), 1.0, {"state": np.ones(2, np.float32)}, False, False)


# ---------------------------------------------------------------------------- mixing
def test_mixed_source_draws_rounded_share_from_secondary():
    online = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100, seed=0)
    demos = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100, seed=1)
    run_id_episode(online, 1, [1.0] * 20, "truncated")     # ids 1..21 (positive)
    run_id_episode(demos, -40, [2.0] * 20, "terminated")   # ids -40..-20 (negative)
    for fraction, batch_size, expected_demo_rows in [(0.25, 8, 2), (0.5, 256, 128), (0.3, 10, 3),
                                                      (0.0, 7, 0), (1.0, 7, 7)]:
        batch = MixedSource(online, demos, fraction).sample(batch_size)
        ids = batch.obs[:, 0].numpy()
        assert len(batch) == batch_size
        assert (ids < 0).sum() == expected_demo_rows
        assert np.all(ids[: batch_size - expected_demo_rows] > 0)  # primary rows come first
    for fraction in (-0.1, 1.5):
        with pytest.raises(ValueError, match="secondary_fraction"):
            MixedSource(online, demos, fraction)
    other = ReplayBuffer(spaces.Box(-1, 1, (3,), np.float32), ACTION_SPACE, capacity=100)
    with pytest.raises(ValueError, match="observation_space differ"):
        MixedSource(online, other, 0.5)


# ---------------------------------------------------------------------------- persistence
def test_reload_restores_contents_and_samples_bit_identically(tmp_path):
    stack, capacity = 2, 40
    buffer = ReplayBuffer(pixel_state_space(stack), ACTION_SPACE, capacity=capacity, n_step=3, gamma=0.9,
                          frame_stack=stack, directory=tmp_path, chunk_size=8, seed=7)
    recorder = NaiveRecorder(buffer, stack, seed=8, dict_obs=True)
    for length, end in [(9, "terminated"), (30, "truncated"), (4, "abandoned"), (20, "truncated"), (6, "open")]:
        recorder.episode(length, end)
    buffer.flush()
    buffer.sample(5)  # advance the RNG so the restored state is not the seed's
    state = buffer.state_dict()

    restored = ReplayBuffer.load(tmp_path, seed=123)
    restored.load_state_dict(state)
    assert restored.num_slots_written == buffer.num_slots_written == len(recorder.slots)
    assert len(restored) == len(buffer)
    recorder.check(restored)  # same transitions as naive stacking (the RNG moves on: re-sync below)
    restored.load_state_dict(state)
    buffer.load_state_dict(state)
    for _ in range(3):
        a, b = buffer.sample(64), restored.sample(64)
        for name in ("action", "reward", "discount"):
            assert torch.equal(getattr(a, name), getattr(b, name))
        for key in ("pixels", "state"):
            assert torch.equal(a.obs[key], b.obs[key]) and torch.equal(a.next_obs[key], b.next_obs[key])

    # Appending after the reload continues the same directory.
    recorder.buffer = restored
    recorder.episode(12, "terminated")
    restored.flush()
    again = ReplayBuffer.load(tmp_path)
    recorder.check(again)


def test_reload_rejects_mismatch_corruption_and_never_overwrites(tmp_path):
    buffer = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=50, n_step=1, directory=tmp_path, chunk_size=5)
    run_id_episode(buffer, 0, [1.0] * 12, "truncated")  # 13 slots: chunks 0 and 1 written, 2 pending
    chunks = sorted(tmp_path.glob("chunk_*.npz"))
    assert [c.name for c in chunks] == ["chunk_00000000.npz", "chunk_00000001.npz"]

    with pytest.raises(ReplayDataError, match="observation_space"):
        ReplayBuffer.load(tmp_path, observation_space=spaces.Box(-1, 1, (4,), np.float32))
    with pytest.raises(ReplayDataError, match="frame_stack|observation_space"):
        ReplayBuffer(pixel_space(2), ACTION_SPACE, capacity=50, frame_stack=2, directory=tmp_path, chunk_size=5)

    fresh = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=50, directory=tmp_path, chunk_size=5)
    with pytest.raises(RuntimeError, match="load_from_disk"):
        fresh.reset(np.zeros(1, np.float32))
    assert ReplayBuffer.load(tmp_path).num_slots_written == 10

    original = chunks[1].read_bytes()
    chunks[1].write_bytes(original[: len(original) // 2])
    with pytest.raises(ReplayDataError, match="chunk_00000001.npz"):
        ReplayBuffer.load(tmp_path)
    assert chunks[1].exists()  # never deleted
    chunks[1].write_bytes(original)
    chunks[0].rename(tmp_path / "elsewhere.npz")
    with pytest.raises(ReplayDataError, match="chunk_00000000.npz is missing"):
        ReplayBuffer.load(tmp_path)


# ---------------------------------------------------------------------------- killed writer
CHUNK = 16
KILL_STACK = 2


def deterministic_stream(buffer: ReplayBuffer):
    """Episodes of 6 steps (terminated, then truncated, alternately); every value is a function
    of the slot index. Yields the number of slots written after each write."""
    episode = 0
    while True:
        frames = [np.full(FRAME_SHAPE, buffer.num_slots_written % 251, np.uint8)] * KILL_STACK
        slot = buffer.num_slots_written
        buffer.reset({"pixels": np.concatenate(frames), "state": np.array([slot, -slot], np.float32)})
        yield buffer.num_slots_written
        for t in range(6):
            slot = buffer.num_slots_written
            frames = frames[1:] + [np.full(FRAME_SHAPE, slot % 251, np.uint8)]
            buffer.add(np.array([np.sin(slot), np.cos(slot)], np.float32), 0.1 * slot,
                       {"pixels": np.concatenate(frames), "state": np.array([slot, -slot], np.float32)},
                       terminated=t == 5 and episode % 2 == 0, truncated=t == 5 and episode % 2 == 1)
            yield buffer.num_slots_written
        episode += 1


def make_kill_buffer(directory=None) -> ReplayBuffer:
    return ReplayBuffer(pixel_state_space(KILL_STACK), ACTION_SPACE, capacity=100_000, n_step=3,
                        frame_stack=KILL_STACK, directory=directory, chunk_size=CHUNK)


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    import test_replay
    buffer = test_replay.make_kill_buffer({directory!r})
    real_savez, chunk_writes = np.savez, []

    def savez_stalling_halfway(handle, **arrays):
        real_savez(handle, **arrays)
        chunk_writes.append(1)
        if len(chunk_writes) == {stall_on_chunk_write}:
            handle.truncate(handle.tell() // 2)  # half a file reached the disk ...
            handle.flush()
            print("stalled", buffer.num_slots_written, flush=True)
            time.sleep(600)  # ... when the kill comes

    np.savez = savez_stalling_halfway
    for written in test_replay.deterministic_stream(buffer):
        if {stop} and written == {stop}:
            print("stopped", written, flush=True)
            time.sleep(600)
        if written % 50 == 0:
            print("written", written, flush=True)
""")


def kill_writer_after(directory: Path, stop: int, wait_for: int, stall_on_chunk_write: int = 0) -> int:
    """Run the writer in a child; SIGKILL it once it reports ``wait_for`` slots written (or that it
    stalled in a chunk write). Returns the last reported count."""
    code = WRITER.format(tests=str(Path(__file__).parent), directory=str(directory), stop=stop,
                         stall_on_chunk_write=stall_on_chunk_write)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        for line in child.stdout:
            event, count = line.split()
            reported = int(count)
            if reported >= wait_for or event == "stalled":
                break
        else:
            raise AssertionError(f"writer exited early with code {child.wait()}")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return reported


def assert_exact_prefix(restored: ReplayBuffer) -> None:
    total = restored.num_slots_written
    reference = make_kill_buffer()
    for written in deterministic_stream(reference):
        if written > total:
            break
    for key in ("pixels", "state"):
        assert np.array_equal(restored._obs[key][:total], reference._obs[key][:total])
    for name in ("_action", "_reward", "_terminated", "_truncated", "_episode_start"):
        assert np.array_equal(getattr(restored, name)[:total], getattr(reference, name)[:total]), name
    # The newest slot's successor was lost with the unfinished chunk.
    assert np.array_equal(restored._has_action[: total - 1], reference._has_action[: total - 1])
    assert not restored._has_action[total - 1]


def test_killed_writer_loses_at_most_the_chunk_being_filled(tmp_path):
    # Killed while idle mid-chunk: chunk c is on disk once the first slot of chunk c+1 is written.
    stop = 5 * CHUNK + 9
    kill_writer_after(tmp_path / "idle", stop=stop, wait_for=stop)
    restored = ReplayBuffer.load(tmp_path / "idle")
    assert restored.num_slots_written == 5 * CHUNK
    assert_exact_prefix(restored)
    assert len(restored) > 0 and restored.sample(8).reward.shape == (8,)

    # Killed halfway through writing chunk 3 (its slots are all in memory): exactly that chunk is
    # lost; the half-written temporary file is ignored and left in place.
    reported = kill_writer_after(tmp_path / "in_write", stop=0, wait_for=10**9, stall_on_chunk_write=4)
    assert reported == 4 * CHUNK
    restored = ReplayBuffer.load(tmp_path / "in_write")
    assert restored.num_slots_written == 3 * CHUNK
    assert (tmp_path / "in_write" / ".chunk_00000003.npz.tmp").exists()
    assert_exact_prefix(restored)

    # Killed at full speed, possibly inside a chunk write: the reload sees only whole chunks.
    reported = kill_writer_after(tmp_path / "busy", stop=0, wait_for=400)
    restored = ReplayBuffer.load(tmp_path / "busy")
    total = restored.num_slots_written
    assert total % CHUNK == 0 and total >= reported - CHUNK
    assert_exact_prefix(restored)
    restored.reset({"pixels": np.zeros((3 * KILL_STACK, 8, 8), np.uint8), "state": np.zeros(2, np.float32)})


# ---------------------------------------------------------------------------- per-step cost
def run_cost_episode(buffer: ReplayBuffer, first_id: int, rewards, costs, end: str) -> None:
    buffer.reset(np.array([first_id], np.float32))
    for t, (reward, cost) in enumerate(zip(rewards, costs)):
        last = t == len(rewards) - 1
        buffer.add(np.zeros(2, np.float32), reward, np.array([first_id + t + 1], np.float32),
                   terminated=last and end == "terminated", truncated=last and end == "truncated",
                   cost=cost)


def costs_by_id(buffer: ReplayBuffer) -> dict[int, float]:
    batch, ids, rows = all_rows_by_id(buffer, batch_size=2000)
    return {int(ids[r]): batch.cost[r].item() for r in rows}


def test_cost_is_n_step_discounted_like_the_reward_and_absent_unless_tracked():
    # Costs 1,2,3,4 then termination; n_step 3, gamma 0.5: the windows of the reward test.
    buffer = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100, n_step=3, gamma=0.5, track_cost=True)
    run_cost_episode(buffer, 0, [0.0] * 4, [1.0, 2.0, 3.0, 4.0], "terminated")
    run_cost_episode(buffer, 10, [0.0] * 2, [8.0, 2.0], "truncated")
    assert costs_by_id(buffer) == {0: 1 + 0.5 * 2 + 0.25 * 3, 1: 2 + 0.5 * 3 + 0.25 * 4,
                                   2: 3 + 0.5 * 4, 3: 4.0, 10: 8 + 0.5 * 2, 11: 2.0}
    assert buffer.sample(4).cost.dtype == torch.float32

    plain = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100)
    run_id_episode(plain, 0, [1.0, 2.0], "terminated")
    assert plain.sample(4).cost is None
    assert plain.nbytes < ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100, track_cost=True).nbytes


def test_cost_argument_must_match_track_cost_and_be_finite():
    tracked = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100, track_cost=True)
    tracked.reset(np.array([0.0], np.float32))
    next_obs = np.array([1.0], np.float32)
    with pytest.raises(ValueError, match="pass add\\(..., cost="):
        tracked.add(np.zeros(2, np.float32), 1.0, next_obs, False, False)
    with pytest.raises(ValueError, match="cost is nan"):
        tracked.add(np.zeros(2, np.float32), 1.0, next_obs, False, False, cost=float("nan"))
    assert tracked.num_slots_written == 1  # nothing recorded by the rejected steps
    plain = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100)
    plain.reset(np.array([0.0], np.float32))
    with pytest.raises(ValueError, match="track_cost=True"):
        plain.add(np.zeros(2, np.float32), 1.0, next_obs, False, False, cost=0.5)


def test_mixed_source_carries_cost_and_refuses_a_source_without_it():
    online = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100, seed=0, track_cost=True)
    demos = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100, seed=1, track_cost=True)
    run_cost_episode(online, 1, [0.0] * 10, [0.25] * 10, "truncated")   # positive ids cost 0.25
    run_cost_episode(demos, -40, [0.0] * 10, [3.0] * 10, "terminated")  # negative ids cost 3
    batch = MixedSource(online, demos, 0.5).sample(16)
    ids, cost = batch.obs[:, 0].numpy(), batch.cost.numpy()
    assert np.all(cost[ids > 0] == 0.25) and np.all(cost[ids < 0] == 3.0)
    untracked = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=100, seed=2)
    run_id_episode(untracked, -40, [1.0] * 10, "terminated")
    with pytest.raises(ValueError, match="with and without costs"):
        MixedSource(online, untracked, 0.5).sample(16)


def test_cost_persists_in_chunks_and_track_cost_must_match_on_reload(tmp_path):
    buffer = ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=50, n_step=2, gamma=0.5, directory=tmp_path,
                          chunk_size=4, track_cost=True)
    run_cost_episode(buffer, 0, [0.0] * 9, [float(t) for t in range(9)], "terminated")
    buffer.flush()
    restored = ReplayBuffer.load(tmp_path)
    assert restored.track_cost
    assert costs_by_id(restored) == costs_by_id(buffer)
    assert costs_by_id(restored)[3] == 3 + 0.5 * 4
    with pytest.raises(ReplayDataError, match="track_cost"):
        ReplayBuffer(ID_SPACE, ACTION_SPACE, capacity=50, directory=tmp_path, chunk_size=4)
