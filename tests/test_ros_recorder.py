"""Session recorder (robo_rl.hardware.recorder) with real processes and real DDS on loopback.

The recorder runs as a child process; the publisher is this file run as a script (`publish`
mode) in a second one, so neither shares rclpy state with pytest. Published values are a pure
function of the message index, so the test can check every recorded message byte for byte.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("mcap_ros2")

from robo_rl.hardware import recorder as rec  # noqa: E402

DOMAIN_ID = 87                  # unique to this module: concurrent ROS tests stay apart
JOINT_TOPIC = "/joint_states"
WRENCH_TOPIC = "/ft_sensor/wrench"
JOINT_TYPE = "sensor_msgs/msg/JointState"
WRENCH_TYPE = "geometry_msgs/msg/WrenchStamped"
JOINTS = tuple(f"joint{i}" for i in range(1, 8))
RATE_HZ = 200.0
WRENCH_EVERY = 4                # one WrenchStamped per this many JointStates
STAMP_BASE_S = 1_700_000_000    # header stamps: base + index / RATE_HZ
FRAME = "ft_sensor"
MATCH_TIMEOUT_S = 15.0          # discovery on a loaded 2-core machine
STOP_TIMEOUT_S = 15.0
COUNT = 200                     # clean run: 1 s of joint states
FLUSH_INTERVAL_S = 0.2          # recorder --flush-interval: the file lags by <= this
DISCOVERY_SLACK = 5             # messages the start may miss although the publisher waits
KILL_COUNT = 2000               # long enough to be killed mid-stream
KILL_AFTER_ON_DISK = 100        # joint states seen in the file before the SIGKILL


def ros_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(DOMAIN_ID), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_LOG_DIR=str(tmp_path / "ros_log"), PYTHONUNBUFFERED="1")
    return env


# ---------------------------------------------------------------------------------------------
# publisher (this file as a script)
# ---------------------------------------------------------------------------------------------

def expected_joint(index: int) -> dict:
    return {"position": [index + j / 10 for j in range(len(JOINTS))],
            "velocity": [-index - j / 100 for j in range(len(JOINTS))],
            "stamp": divmod(STAMP_BASE_S * rec.NS_PER_S + round(index * rec.NS_PER_S / RATE_HZ),
                            rec.NS_PER_S)}


def expected_wrench(index: int) -> dict:
    return {"force": [float(index), 1.0, -2.0], "torque": [0.5, -float(index), 3.0],
            "stamp": expected_joint(index)["stamp"]}


def publish_main(argv: list[str]) -> int:
    """Wait until the recorder subscribed to both topics, then publish `--count` joint states at
    RATE_HZ (and a wrench every WRENCH_EVERY); print 'done N' at the end."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)

    import rclpy
    from geometry_msgs.msg import WrenchStamped
    from sensor_msgs.msg import JointState

    rclpy.init()
    node = rclpy.create_node("recorder_test_publisher")
    joint_pub = node.create_publisher(JointState, JOINT_TOPIC, 10)
    wrench_pub = node.create_publisher(WrenchStamped, WRENCH_TOPIC, 10)
    deadline = time.monotonic() + MATCH_TIMEOUT_S
    while joint_pub.get_subscription_count() < 1 or wrench_pub.get_subscription_count() < 1:
        if time.monotonic() > deadline:
            print("no subscriber", flush=True)
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    period = 1.0 / RATE_HZ
    start = time.monotonic()
    for index in range(args.count):
        values = expected_joint(index)
        msg = JointState()
        msg.header.stamp.sec, msg.header.stamp.nanosec = values["stamp"]
        msg.header.frame_id = "base"
        msg.name = list(JOINTS)
        msg.position, msg.velocity = values["position"], values["velocity"]
        joint_pub.publish(msg)
        if index % WRENCH_EVERY == 0:
            w = expected_wrench(index)
            wrench = WrenchStamped()
            wrench.header.stamp.sec, wrench.header.stamp.nanosec = w["stamp"]
            wrench.header.frame_id = FRAME
            f, t = wrench.wrench.force, wrench.wrench.torque
            f.x, f.y, f.z = w["force"]
            t.x, t.y, t.z = w["torque"]
            wrench_pub.publish(wrench)
        delay = start + (index + 1) * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    time.sleep(0.2)          # let reliable resends finish before the writers go away
    print(f"done {args.count}", flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def start_recorder(tmp_path: Path, output: Path, *extra: str) -> subprocess.Popen:
    return rec.record_process(output, [JOINT_TOPIC, WRENCH_TOPIC], ros_env(tmp_path),
                              extra_args=extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)


def start_publisher(tmp_path: Path, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "publish", "--count", str(count)],
                            env=ros_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def index_of_joint(msg) -> int:
    """The publisher's index, recovered from the first position (= index)."""
    return round(msg.position[0])


def assert_joint_matches(msg, index: int) -> None:
    values = expected_joint(index)
    assert list(msg.name) == list(JOINTS)
    assert list(msg.position) == values["position"]
    assert list(msg.velocity) == values["velocity"]
    assert list(msg.effort) == []
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == values["stamp"]
    assert msg.header.frame_id == "base"


def assert_wrench_matches(msg, index: int) -> None:
    values = expected_wrench(index)
    f, t = msg.wrench.force, msg.wrench.torque
    assert [f.x, f.y, f.z] == values["force"] and [t.x, t.y, t.z] == values["torque"]
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == values["stamp"]
    assert msg.header.frame_id == FRAME


def assert_contiguous(indices: list[int], step: int = 1) -> None:
    assert indices, "no messages recorded"
    assert indices == list(range(indices[0], indices[0] + step * len(indices), step)), \
        f"gap or reordering in recorded indices {indices[:5]}...{indices[-5:]}"


def wait_on_disk(output: Path, done, alive: tuple[subprocess.Popen, ...] = ()) -> list:
    """Poll the (unfinished) recording until done(joint messages so far) -> those messages."""
    deadline = time.monotonic() + MATCH_TIMEOUT_S + KILL_COUNT / RATE_HZ
    while True:
        msgs = ([m.message for m in rec.iter_recording(output, [JOINT_TOPIC])]
                if output.exists() else [])
        if done(msgs):
            return msgs
        assert time.monotonic() < deadline, f"only {len(msgs)} joint states reached the file"
        for process in alive:
            assert process.poll() is None, finish(process)
        time.sleep(FLUSH_INTERVAL_S)


def finish(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out or ""


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------

def test_schema_text_is_the_rosbag2_concatenation():
    """The schema holds the .msg text and each nested definition once, after 80 '='."""
    text = rec.message_definition("sensor_msgs/JointState")
    sections = text.split(rec.DEFINITION_SEPARATOR + "\n")
    assert "float64[] position" in sections[0]
    assert [s.splitlines()[0] for s in sections[1:]] == ["MSG: std_msgs/Header",
                                                         "MSG: builtin_interfaces/Time"]
    with pytest.raises(rec.MessageTypeError, match="no_such_msgs/msg/Thing"):
        rec.message_definition("no_such_msgs/msg/Thing")


def test_records_published_values_and_finishes_the_file(tmp_path):
    """SIGINT after a 1 s burst: every message decodes to what was published, the channels and
    schemas are rosbag2's, and the summary (statistics, indexes) is written."""
    from mcap.reader import make_reader
    with warnings.catch_warnings():     # the module says it is deprecated; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        from mcap_ros2.reader import read_ros2_messages

    output = tmp_path / "session.mcap"
    recorder = start_recorder(tmp_path, output, "--flush-interval", str(FLUSH_INTERVAL_S))
    publisher = start_publisher(tmp_path, COUNT)
    published = finish(publisher, MATCH_TIMEOUT_S + COUNT / RATE_HZ + STOP_TIMEOUT_S)
    assert publisher.returncode == 0, published
    # stop once the last message is on disk (a loaded machine may lag), not after a guess
    wait_on_disk(output, lambda msgs: msgs and index_of_joint(msgs[-1]) == COUNT - 1)
    recorder.send_signal(signal.SIGINT)
    out, err = recorder.communicate(timeout=STOP_TIMEOUT_S)
    assert recorder.returncode == 0, err

    summary_lines = out.strip().splitlines()
    assert len(summary_lines) == 1 and summary_lines[0].startswith(f"recorded {output}")
    assert "MiB" in summary_lines[0] and JOINT_TOPIC in summary_lines[0], summary_lines

    assert rec.recording_is_complete(output)
    with open(output, "rb") as file:
        reader = make_reader(file)
        assert reader.get_header().profile == rec.PROFILE
        summary = reader.get_summary()
    assert summary is not None and summary.chunk_indexes
    channels = {c.topic: c for c in summary.channels.values()}
    assert set(channels) == {JOINT_TOPIC, WRENCH_TOPIC}
    assert {c.message_encoding for c in channels.values()} == {rec.MESSAGE_ENCODING}
    schema_of = {topic: summary.schemas[c.schema_id] for topic, c in channels.items()}
    assert schema_of[JOINT_TOPIC].name == JOINT_TYPE
    assert schema_of[WRENCH_TOPIC].name == WRENCH_TYPE
    assert {s.encoding for s in schema_of.values()} == {rec.SCHEMA_ENCODING}

    joints, wrenches = [], []
    for item in read_ros2_messages(str(output)):
        (joints if item.channel.topic == JOINT_TOPIC else wrenches).append(item)
        # both times from the same host clock: sent before received, and not long before
        assert 0 <= item.log_time_ns - item.publish_time_ns < rec.NS_PER_S
    assert summary.statistics.message_count == len(joints) + len(wrenches)
    assert f"{JOINT_TOPIC} {len(joints)}" in summary_lines[0]

    joint_indices = [index_of_joint(m.ros_msg) for m in joints]
    assert_contiguous(joint_indices)
    assert joint_indices[-1] == COUNT - 1 and len(joints) >= COUNT - DISCOVERY_SLACK
    for item, index in zip(joints, joint_indices):
        assert_joint_matches(item.ros_msg, index)
    # the MCAP sequence is the publisher's sequence number (1-based): a gap would show a drop
    assert [m.sequence_count for m in joints] == [i + 1 for i in joint_indices]
    wrench_indices = [round(m.ros_msg.wrench.force.x) for m in wrenches]
    assert_contiguous(wrench_indices, WRENCH_EVERY)
    assert wrench_indices[-1] == (COUNT - 1) // WRENCH_EVERY * WRENCH_EVERY
    for item, index in zip(wrenches, wrench_indices):
        assert_wrench_matches(item.ros_msg, index)


def test_sigkill_leaves_a_readable_file_with_all_flushed_messages(tmp_path):
    """SIGKILL mid-stream: the file has no summary but every message that was on disk before
    the kill is still read back intact, by mcap's own stream reader and by iter_recording."""
    from mcap.exceptions import EndOfFile
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader
    from mcap_ros2.decoder import DecoderFactory

    output = tmp_path / "killed.mcap"
    recorder = start_recorder(tmp_path, output, "--flush-interval", str(FLUSH_INTERVAL_S))
    publisher = start_publisher(tmp_path, KILL_COUNT)
    try:
        on_disk = len(wait_on_disk(output, lambda msgs: len(msgs) >= KILL_AFTER_ON_DISK,
                                   alive=(publisher, recorder)))
        recorder.send_signal(signal.SIGKILL)
        recorder.wait(timeout=STOP_TIMEOUT_S)
    finally:
        publisher.kill()
        finish(publisher)
        if recorder.poll() is None:
            recorder.kill()
        finish(recorder)
    assert recorder.returncode == -signal.SIGKILL
    assert not rec.recording_is_complete(output)

    # mcap's stream reader, by hand: the file simply ends (EndOfFile at the torn tail)
    decoders, schemas, channels, joints = {}, {}, {}, []
    factory = DecoderFactory()
    with open(output, "rb") as file:
        records = StreamReader(file).records
        while True:
            try:
                record = next(records)
            except (StopIteration, EndOfFile):
                break
            if isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel):
                channels[record.id] = record
            elif isinstance(record, Message) and channels[record.channel_id].topic == JOINT_TOPIC:
                channel = channels[record.channel_id]
                schema = schemas[channel.schema_id]
                decoder = decoders.setdefault(schema.id, factory.decoder_for("cdr", schema))
                joints.append(decoder(record.data))
    assert len(joints) >= on_disk
    indices = [index_of_joint(m) for m in joints]
    assert_contiguous(indices)
    for msg, index in zip(joints, indices):
        assert_joint_matches(msg, index)

    again = [m.message for m in rec.iter_recording(output, [JOINT_TOPIC])]
    assert [index_of_joint(m) for m in again] == indices


@pytest.mark.parametrize("case", ["exists", "no_folder", "unknown_type", "bad_topic"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, case):
    """Bad input never starts recording, never touches an existing file, prints one line."""
    existing = tmp_path / "old.mcap"
    existing.write_bytes(b"previous session")
    output, topics = str(tmp_path / "new.mcap"), [JOINT_TOPIC]
    if case == "exists":
        output = str(existing)
    elif case == "no_folder":
        output = str(tmp_path / "missing" / "x.mcap")
    elif case == "unknown_type":
        topics = [f"{JOINT_TOPIC}:no_such_msgs/msg/Thing"]
    else:
        topics = ["/bad topic!"]
    result = subprocess.run([sys.executable, "-m", rec.MODULE, "--output", output,
                             "--topics", *topics], env=ros_env(tmp_path), capture_output=True,
                            text=True, timeout=STOP_TIMEOUT_S)
    assert result.returncode == rec.EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recorder: error: "), result.stderr
    assert "Traceback" not in result.stderr
    expected_word = {"exists": "--overwrite", "no_folder": "does not exist",
                     "unknown_type": "no_such_msgs", "bad_topic": "not a valid"}[case]
    assert expected_word in lines[0]
    assert existing.read_bytes() == b"previous session"
    assert not (tmp_path / "new.mcap").exists()


def test_record_process_requires_a_domain(tmp_path):
    with pytest.raises(ValueError, match="ROS_DOMAIN_ID"):
        rec.record_process(tmp_path / "x.mcap", [JOINT_TOPIC], {"PATH": os.environ["PATH"]})


if __name__ == "__main__":
    if sys.argv[1:2] == ["publish"]:
        sys.exit(publish_main(sys.argv[2:]))
    sys.exit(f"usage: {sys.argv[0]} publish --count N")
