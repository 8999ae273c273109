"""Session recording: ROS 2 topics -> one MCAP file, written the way rosbag2 writes it.

    python -m robo_rl.hardware.recorder --output session.mcap \
        --topics /joint_states /ft_sensor/wrench [--duration S]

Every message is stored as the serialized CDR bytes that arrived (raw subscriptions: nothing is
deserialized, so the recorder keeps up with 1 kHz streams and records types exactly as sent).
File layout follows rosbag2's MCAP storage plugin, so Foxglove, `ros2 bag` (mcap plugin),
`mcap` CLI and mcap_ros2 read it: profile "ros2", schema encoding "ros2msg" (the .msg text with
every nested definition appended), message encoding "cdr", log_time = receive time and
publish_time = the publisher's send time (DDS source timestamp), both ns since the Unix epoch.

Crash safety: the file is written at its final path from the start (no `.part` + rename), in
small chunks that reach the OS as soon as they are complete and at least every flush interval.
A recorder killed with SIGKILL (or a crash) leaves a file without a summary section that holds
every message except those of the chunk in progress; `iter_recording` (or any MCAP stream
reader, or `mcap recover`) reads it. SIGINT, SIGTERM and SIGHUP finish the file properly
(summary, indexes, statistics). Whether a file was finished is `recording_is_complete(path)`.
An existing file is never replaced unless `--overwrite` is given.

Topic types come from the ROS graph (the publishers of each topic, polled until one appears) or
from an explicit `topic:type` argument. Each topic is subscribed once it has a publisher, with
QoS matched to what its publishers offer (as rosbag2 does: reliable only if every publisher is,
transient-local only if every publisher is). Discovery stays on loopback unless the caller's
environment says otherwise (ROS_AUTOMATIC_DISCOVERY_RANGE defaults to LOCALHOST here).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Mapping, NamedTuple, Sequence

from .config import MAX_DOMAIN_ID
from .ros import LOOPBACK_DISCOVERY

# --- file format (rosbag2 MCAP storage plugin conventions) ---
PROFILE = "ros2"
SCHEMA_ENCODING = "ros2msg"
MESSAGE_ENCODING = "cdr"
DEFINITION_SEPARATOR = "=" * 80        # between the main .msg text and each nested one
MODULE = "robo_rl.hardware.recorder"
MCAP_MAGIC = b"\x89MCAP0\r\n"          # begins and ends a finished file
COMPRESSIONS = ("zstd", "lz4", "none")

# --- crash safety: what a SIGKILL can cost at most ---
DEFAULT_CHUNK_BYTES = 256 * 1024       # a chunk is written once its messages exceed this
DEFAULT_FLUSH_INTERVAL_S = 1.0         # ...and the chunk in progress at least this often

# --- ROS side ---
DISCOVERY_INTERVAL_S = 0.25            # how often topics without a publisher are looked up again
QUEUE_DEPTH = 1000                     # per subscription: 1 s of a 1 kHz stream if the disk stalls
SPIN_TIMEOUT_S = 0.1                   # longest wait before a stop signal is noticed
DEFAULT_NODE_NAME = "session_recorder"
STOP_TIMEOUT_S = 10.0                  # stop_recording: SIGINT, then this long before SIGKILL
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "recorder"                      # prefix of its one-line errors
BYTES_PER_MIB = 1024 * 1024
NS_PER_S = 1_000_000_000

# .msg primitive types (rosidl), which have no definition of their own
PRIMITIVE_TYPES = frozenset({
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring",
})
_ARRAY_SUFFIX = re.compile(r"\[[^\]]*\]$")          # [], [N], [<=N]
_STRING_BOUND = re.compile(r"^(w?string)<=\d+$")    # string<=N


def _first_line(error: BaseException) -> str:
    """rcl's messages span lines (a caret under the bad character): keep the reason."""
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(":") if lines else type(error).__name__


class MessageTypeError(LookupError):
    """A message type that cannot be recorded here: unknown name, not importable, or no .msg
    definition installed. str() names the type and says what is missing."""


class RecorderUsageError(ValueError):
    """Bad command-line input; str() is the one-line message shown to the user."""


# ----------------------------------------------------------------------------------------------
# message definitions (schema text)
# ----------------------------------------------------------------------------------------------

def normalize_type_name(type_name: str) -> str:
    """`pkg/Type` or `pkg/msg/Type` -> `pkg/msg/Type` (the ROS 2 graph's and rosbag2's form)."""
    parts = type_name.strip().split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3 and all(parts) and parts[1] == "msg":
        return "/".join(parts)
    raise MessageTypeError(f"message type {type_name!r} is not of the form pkg/msg/Type "
                           "(services and actions are not recordable as topics here)")


def definition_search_paths(package: str | None = None) -> list[Path]:
    """`share/` folders that may hold `<package>/msg/*.msg`: every AMENT_PREFIX_PATH entry, this
    interpreter's prefix (where the PyPI ROS 2 wheels put them), and the prefix the package's
    Python module was imported from."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    if package is not None:
        try:
            module_file = importlib.import_module(package).__file__
        except ImportError:
            module_file = None
        if module_file:
            # <prefix>/lib/pythonX.Y/site-packages/<package>/__init__.py -> any parent with share/
            prefixes.extend(str(parent) for parent in Path(module_file).resolve().parents)
    shares = (Path(prefix) / "share" for prefix in dict.fromkeys(prefixes))
    return [share for share in shares if share.is_dir()]


@lru_cache(maxsize=None)
def _own_definition(type_name: str) -> str:
    """The .msg text of one type (no nested definitions)."""
    package, _, name = normalize_type_name(type_name).split("/")
    searched = definition_search_paths(package)
    for share in searched:
        path = share / package / "msg" / f"{name}.msg"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    places = ", ".join(str(s) for s in searched) or "(no share/ folder found)"
    raise MessageTypeError(f"no message definition for {type_name}: {package}/msg/{name}.msg is "
                           f"not under {places}; install the package that provides {package} "
                           "(or source its workspace so AMENT_PREFIX_PATH names it)")


def field_types(definition: str, package: str) -> list[str]:
    """The non-primitive field types of a .msg text, as `pkg/msg/Type`, in order of appearance.

    Constants (`int32 X=1`) have primitive types only; comments start with '#'. A bare type name
    is in the same package; `Header` is the ROS 1 spelling of std_msgs/Header."""
    found: list[str] = []
    for line in definition.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        base = _ARRAY_SUFFIX.sub("", line.split()[0])
        if base in PRIMITIVE_TYPES or _STRING_BOUND.match(base):
            continue
        if "/" in base:
            nested = normalize_type_name(base)
        elif base == "Header":
            nested = "std_msgs/msg/Header"
        else:
            nested = f"{package}/msg/{base}"
        if nested not in found:
            found.append(nested)
    return found


@lru_cache(maxsize=None)
def message_definition(type_name: str) -> str:
    """The schema text rosbag2 stores for `type_name`: its .msg text, then for every type it
    depends on (transitively, each once, in order of first use) a line of 80 '=', a line
    `MSG: pkg/Type` and that type's .msg text. Raises MessageTypeError naming the missing type."""
    root = normalize_type_name(type_name)
    text = _own_definition(root)
    order: list[str] = []
    queue = field_types(text, root.split("/")[0])
    while queue:
        dependency = queue.pop(0)
        if dependency in order or dependency == root:
            continue
        order.append(dependency)
        queue.extend(field_types(_own_definition(dependency), dependency.split("/")[0]))
    parts = [text.rstrip("\n")]
    for dependency in order:
        package, _, name = dependency.split("/")
        parts.append(f"{DEFINITION_SEPARATOR}\nMSG: {package}/{name}\n"
                     f"{_own_definition(dependency).rstrip(chr(10))}")
    return "\n".join(parts) + "\n"


def import_message_type(type_name: str):
    """The Python message class of `pkg/msg/Type` (rclpy needs its type support even for raw
    subscriptions)."""
    package, kind, name = normalize_type_name(type_name).split("/")
    try:
        module = importlib.import_module(f"{package}.{kind}")
    except ImportError as error:
        raise MessageTypeError(f"cannot record {type_name}: Python package {package} is not "
                               f"installed here ({error})") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise MessageTypeError(f"cannot record {type_name}: {package}.{kind} has no "
                               f"{name}") from None


# ----------------------------------------------------------------------------------------------
# the MCAP file
# ----------------------------------------------------------------------------------------------

class McapSessionWriter:
    """One MCAP recording being written (no ROS needed): channels by topic, raw CDR messages.

    Opened with exclusive create unless `overwrite`, so an existing recording is never replaced
    by accident (OSError such as FileExistsError propagates). A chunk the mcap Writer completes is
    pushed to the OS right away; `flush()` closes the chunk in progress (called every flush
    interval by the node), so a killed process loses at most that chunk."""

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, compression: str = "zstd"):
        from mcap import __version__ as mcap_version
        from mcap.writer import CompressionType, Writer

        if compression not in COMPRESSIONS:
            raise ValueError(f"compression {compression!r} is not one of {COMPRESSIONS}")
        if chunk_bytes <= 0:
            raise ValueError(f"chunk size must be positive, got {chunk_bytes}")
        self.path = Path(path)
        self._file = open(self.path, "wb" if overwrite else "xb")
        try:
            self._writer = Writer(self._file, chunk_size=chunk_bytes,
                                  compression=CompressionType[compression.upper()])
            self._writer.start(profile=PROFILE, library=f"{MODULE}; mcap {mcap_version}")
            self._file.flush()
        except BaseException:
            self._file.close()
            self.path.unlink()      # just made by us, holds nothing
            raise
        self._channels: dict[str, int] = {}
        self._schemas: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self._unflushed = 0
        self.closed = False         # no more messages
        self.complete = False       # summary and footer written

    def add_topic(self, topic: str, type_name: str) -> None:
        """Register `topic` (once) with the schema of `type_name` (once per type)."""
        if topic in self._channels:
            return
        type_name = normalize_type_name(type_name)
        if type_name not in self._schemas:
            self._schemas[type_name] = self._writer.register_schema(
                name=type_name, encoding=SCHEMA_ENCODING,
                data=message_definition(type_name).encode("utf-8"))
        self._channels[topic] = self._writer.register_channel(
            topic=topic, message_encoding=MESSAGE_ENCODING, schema_id=self._schemas[type_name])
        self.counts[topic] = 0

    def write(self, topic: str, data: bytes, log_time: int, publish_time: int,
              sequence: int = 0) -> None:
        """Append one serialized message of a registered topic."""
        self._writer.add_message(channel_id=self._channels[topic], log_time=log_time, data=data,
                                 publish_time=publish_time, sequence=sequence)
        # Costs nothing unless the writer just completed a chunk: then it goes to the OS now.
        self._file.flush()
        self.counts[topic] += 1
        self._unflushed += 1

    def flush(self) -> None:
        """Write the chunk in progress (if it holds messages) and hand it to the OS."""
        if self._unflushed and not self.closed:
            self._writer.flush()
            self._unflushed = 0

    def close(self) -> None:
        """Finish the file: last chunk, summary (schemas, channels, statistics, indexes), footer."""
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.finish()
            self._file.flush()
            self.complete = True
        finally:
            self._file.close()

    def size(self) -> int:
        return self.path.stat().st_size


# ----------------------------------------------------------------------------------------------
# reading back (finished or cut short)
# ----------------------------------------------------------------------------------------------

class RecordedMessage(NamedTuple):
    topic: str
    schema_name: str
    log_time: int           # ns, receive time
    publish_time: int       # ns, publisher's send time
    sequence: int
    message: object         # decoded by mcap_ros2 (attribute access like the ROS message)


def recording_is_complete(path: str | os.PathLike) -> bool:
    """True if the file ends with the MCAP footer magic (closed cleanly, summary written)."""
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        if file.tell() < 2 * len(MCAP_MAGIC):
            return False
        file.seek(-len(MCAP_MAGIC), os.SEEK_END)
        return file.read() == MCAP_MAGIC


def iter_recording(path: str | os.PathLike,
                   topics: Sequence[str] | None = None) -> Iterator[RecordedMessage]:
    """Decoded messages in file order, from a finished recording or one cut short (SIGKILL,
    crash, power loss: the file then simply ends; the torn last record is skipped). Works on a
    file that is still being written, too."""
    from mcap.exceptions import EndOfFile
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader
    from mcap_ros2.decoder import DecoderFactory

    factory = DecoderFactory()
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    decoders: dict[int, object] = {}
    with open(path, "rb") as file:
        records = StreamReader(file).records
        while True:
            try:
                record = next(records)
            except (StopIteration, EndOfFile):
                return
            if isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel):
                channels[record.id] = record
            elif isinstance(record, Message):
                channel = channels[record.channel_id]
                if topics is not None and channel.topic not in topics:
                    continue
                schema = schemas[channel.schema_id]
                if schema.id not in decoders:
                    decoders[schema.id] = factory.decoder_for(channel.message_encoding, schema)
                yield RecordedMessage(channel.topic, schema.name, record.log_time,
                                      record.publish_time, record.sequence,
                                      decoders[schema.id](record.data))


# ----------------------------------------------------------------------------------------------
# the node
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TopicSpec:
    """A topic to record; `type_name` None means: take it from the topic's publishers."""

    topic: str
    type_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> "TopicSpec":
        """`/topic` or `/topic:pkg/msg/Type` (ROS names cannot hold ':'). A relative name is
        taken from the root namespace. Raises RecorderUsageError or MessageTypeError."""
        topic, _, type_name = text.partition(":")
        topic = topic.strip()
        if not topic:
            raise RecorderUsageError(f"topic {text!r} has no name")
        if not topic.startswith("/"):
            topic = "/" + topic
        from rclpy.validate_full_topic_name import validate_full_topic_name
        from rclpy.exceptions import InvalidTopicNameException

        try:
            validate_full_topic_name(topic)
        except InvalidTopicNameException as error:
            raise RecorderUsageError(f"topic {text!r} is not a valid ROS 2 name: "
                                     f"{_first_line(error)}") from None
        return cls(topic, normalize_type_name(type_name) if type_name else None)


def _subscription_qos(publishers) -> "QoSProfile":  # noqa: F821 (rclpy imported lazily)
    """rosbag2's rule: reliable/transient-local only where every publisher offers it (a reliable
    reader does not match a best-effort writer; a transient-local reader needs such writers)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    offered = [info.qos_profile for info in publishers]
    reliable = all(q.reliability == ReliabilityPolicy.RELIABLE for q in offered)
    latched = all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=QUEUE_DEPTH,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


@lru_cache(maxsize=None)
def _node_class():
    """SessionRecorder, defined on first use so that this module imports without rclpy."""
    from rclpy.node import Node

    class SessionRecorder(Node):
        """Subscribes (raw) to the given topics once each has a publisher and writes every
        message to a McapSessionWriter. A topic that cannot be recorded (several types on it, a
        type not installed here) is logged once, listed in `failures` and skipped; the others
        keep recording. A write error (disk full) sets `fatal` and stops recording."""

        def __init__(self, writer: McapSessionWriter, topics: Sequence[TopicSpec], *,
                     node_name: str = DEFAULT_NODE_NAME,
                     flush_interval: float = DEFAULT_FLUSH_INTERVAL_S, **node_kwargs):
            super().__init__(node_name, **node_kwargs)
            self.writer = writer
            self.requested = [spec.topic for spec in topics]
            self.pending: dict[str, TopicSpec] = {spec.topic: spec for spec in topics}
            self.types: dict[str, str] = {}
            self.failures: dict[str, str] = {}
            self.fatal: str | None = None
            self._subscriptions_by_topic: dict = {}
            self._waiting_logged: set[str] = set()
            self._discovery_timer = self.create_timer(DISCOVERY_INTERVAL_S, self._discover)
            self._flush_timer = self.create_timer(flush_interval, self._flush)
            self._discover()

        def _discover(self) -> None:
            """Subscribe to every pending topic that now has publishers."""
            for topic, spec in list(self.pending.items()):
                publishers = self.get_publishers_info_by_topic(topic)
                if not publishers:
                    if topic not in self._waiting_logged:
                        self._waiting_logged.add(topic)
                        self.get_logger().info(f"waiting for a publisher on {topic}")
                    continue
                del self.pending[topic]
                try:
                    self._subscribe(spec, publishers)
                except MessageTypeError as error:
                    self.failures[topic] = str(error)
                    self.get_logger().error(f"not recording {topic}: {error}")
            if not self.pending:
                self._discovery_timer.cancel()

        def _subscribe(self, spec: TopicSpec, publishers) -> None:
            offered = sorted({info.topic_type for info in publishers})
            if spec.type_name is None:
                if len(offered) != 1:
                    raise MessageTypeError(f"publishers offer several types {offered}; name one "
                                           f"as {spec.topic}:pkg/msg/Type")
                type_name = normalize_type_name(offered[0])
            else:
                type_name = spec.type_name
                if type_name not in offered:
                    self.get_logger().warning(f"{spec.topic}: publishers offer {offered}, "
                                              f"recording as {type_name} (they will not match)")
            message_class = import_message_type(type_name)
            self.writer.add_topic(spec.topic, type_name)
            self.types[spec.topic] = type_name
            qos = _subscription_qos(publishers)
            self._subscriptions_by_topic[spec.topic] = self.create_subscription(
                message_class, spec.topic, self._callback_for(spec.topic), qos, raw=True)
            self.get_logger().info(
                f"recording {spec.topic} ({type_name}, {qos.reliability.name.lower()}, "
                f"{qos.durability.name.lower()})")

        def _callback_for(self, topic: str):
            writer = self.writer

            def on_message(data: bytes, info) -> None:
                # Two parameters: rclpy then passes the rmw MessageInfo (DDS timestamps).
                if self.fatal is not None:
                    return
                log_time = info.get("received_timestamp") or time.time_ns()
                publish_time = info.get("source_timestamp") or log_time
                sequence = info.get("publication_sequence_number") or 0
                try:
                    writer.write(topic, data, log_time, publish_time,
                                 sequence % (1 << 32))
                except OSError as error:
                    self._fail(error)

            return on_message

        def _flush(self) -> None:
            try:
                self.writer.flush()
            except OSError as error:
                self._fail(error)

        def _fail(self, error: OSError) -> None:
            self.fatal = f"cannot write {self.writer.path}: {error.strerror or error}"
            self.get_logger().error(self.fatal)

        def stop(self) -> None:
            """Stop taking messages (the file stays open for the caller to close)."""
            for subscription in self._subscriptions_by_topic.values():
                self.destroy_subscription(subscription)
            self._subscriptions_by_topic.clear()

    return SessionRecorder


def __getattr__(name: str):
    # `from robo_rl.hardware.recorder import SessionRecorder` works; the reader and the writer
    # still import where the ROS extra is missing.
    if name == "SessionRecorder":
        return _node_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------
# command line and child process
# ----------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m robo_rl.hardware.recorder",
                     description="Record ROS 2 topics to an MCAP file (rosbag2 layout). Stop with "
                                 "Ctrl-C/SIGTERM; a killed recorder leaves a readable file.")
    parser.add_argument("--output", "-o", required=True, help="MCAP file to create")
    parser.add_argument("--topics", "-t", nargs="+", required=True, metavar="TOPIC[:TYPE]",
                        help="topics to record; TYPE (pkg/msg/Type) is taken from the publishers "
                             "when omitted")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until a signal)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing file at --output")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_BYTES, metavar="BYTES",
                        help=f"MCAP chunk size (default {DEFAULT_CHUNK_BYTES})")
    parser.add_argument("--flush-interval", type=float, default=DEFAULT_FLUSH_INTERVAL_S,
                        metavar="S", help="write the chunk in progress at least this often "
                                          f"(default {DEFAULT_FLUSH_INTERVAL_S}); bounds what a "
                                          "crash loses")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="zstd")
    parser.add_argument("--node-name", default=DEFAULT_NODE_NAME)
    return parser


def _open_error(path: Path, error: OSError) -> str:
    if isinstance(error, FileExistsError):
        return (f"{path} already exists; pass --overwrite to replace it (recordings are never "
                "overwritten silently)")
    if isinstance(error, IsADirectoryError):
        return f"{path} is a directory; --output needs a file name"
    if isinstance(error, FileNotFoundError):
        return f"cannot create {path}: folder {path.parent} does not exist"
    if isinstance(error, PermissionError):
        return f"cannot create {path}: permission denied"
    return f"cannot create {path}: {error.strerror or error}"


def _summary(writer: McapSessionWriter, recorder, elapsed: float) -> str:
    parts = []
    for spec_topic in recorder.requested:
        if spec_topic in recorder.failures:
            parts.append(f"{spec_topic} FAILED")
        elif spec_topic in writer.counts:
            parts.append(f"{spec_topic} {writer.counts[spec_topic]}")
        else:
            parts.append(f"{spec_topic} 0 (no publisher)")
    state = "" if writer.complete else " NOT FINISHED"
    return (f"recorded {writer.path}{state}: {writer.size() / BYTES_PER_MIB:.2f} MiB, "
            f"{elapsed:.1f} s; " + ", ".join(parts))


def _check_arguments(args: argparse.Namespace) -> list[TopicSpec]:
    """Everything that can be wrong with the input, found before any file or ROS exists."""
    for name in ("duration", "flush_interval", "chunk_size"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise RecorderUsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    domain = os.environ.get("ROS_DOMAIN_ID", "")
    if domain.strip() and not (domain.strip().isdigit() and int(domain) <= MAX_DOMAIN_ID):
        raise RecorderUsageError(f"ROS_DOMAIN_ID={domain!r} is not an integer in "
                                 f"0..{MAX_DOMAIN_ID}")
    from rclpy.exceptions import InvalidNodeNameException
    from rclpy.validate_node_name import validate_node_name

    try:
        validate_node_name(args.node_name)
    except InvalidNodeNameException as error:
        raise RecorderUsageError(f"--node-name {args.node_name!r}: "
                                 f"{_first_line(error)}") from None
    specs = [TopicSpec.parse(text) for text in args.topics]
    if len({spec.topic for spec in specs}) != len(specs):
        raise RecorderUsageError("a topic is listed twice")
    for spec in specs:
        if spec.type_name is not None:      # fail now, not after the robot started moving
            import_message_type(spec.type_name)
            message_definition(spec.type_name)
    return specs


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point -> exit code (0 ok, 1 a topic or the disk failed, 2 bad input)."""
    args = _parser().parse_args(argv)
    output = Path(args.output)

    def fail(message: str) -> int:
        print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
        return EXIT_USAGE

    try:
        specs = _check_arguments(args)
    except (RecorderUsageError, MessageTypeError) as error:
        return fail(str(error))

    stop_reason: list[str] = []

    def request_stop(signum, _frame) -> None:
        stop_reason.append(signal.Signals(signum).name)
        for sig in STOP_SIGNALS:     # a second signal aborts at once (the file stays readable)
            signal.signal(sig, signal.SIG_DFL)

    for sig in STOP_SIGNALS:         # before the file exists: a stop during start-up is clean
        signal.signal(sig, request_stop)

    try:
        writer = McapSessionWriter(output, overwrite=args.overwrite, chunk_bytes=args.chunk_size,
                                   compression=args.compression)
    except OSError as error:
        return fail(_open_error(output, error))

    for key, value in LOOPBACK_DISCOVERY.items():
        os.environ.setdefault(key, value)
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    context = Context()
    recorder = None
    started = time.monotonic()
    try:
        rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
        recorder = _node_class()(writer, specs, node_name=args.node_name,
                                      flush_interval=args.flush_interval, context=context)
    except Exception as error:  # rcl/rmw setup: bad node name, no network interface, ...
        writer.close()
        output.unlink()             # ours and empty: no half-made recording is left behind
        rclpy.try_shutdown(context=context)
        return fail(f"cannot start ROS 2: {_first_line(error)}")
    try:
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(recorder)
        deadline = None if args.duration is None else started + args.duration
        while (not stop_reason and recorder.fatal is None
               and (deadline is None or time.monotonic() < deadline)):
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
        recorder.stop()
    finally:
        try:
            writer.close()
        except OSError as error:
            print(f"{PROG}: error: cannot finish {output}: {error.strerror or error}",
                  file=sys.stderr, flush=True)
        recorder.destroy_node()
        rclpy.try_shutdown(context=context)
    print(_summary(writer, recorder, time.monotonic() - started), flush=True)
    return EXIT_FAILED if (recorder.fatal or recorder.failures or not writer.complete) \
        else EXIT_OK


def record_process(output: str | os.PathLike, topics: Sequence[str],
                   env: Mapping[str, str], *, duration: float | None = None,
                   overwrite: bool = False, extra_args: Sequence[str] = (),
                   **popen_kwargs) -> subprocess.Popen:
    """Start the recorder as a child process (same interpreter); stop it with `stop_recording`.

    `env` is the child's whole environment and must name ROS_DOMAIN_ID; discovery is kept on
    loopback unless `env` sets ROS_AUTOMATIC_DISCOVERY_RANGE itself."""
    if "ROS_DOMAIN_ID" not in env:
        raise ValueError("record_process: env must set ROS_DOMAIN_ID (the session's domain)")
    child_env = {**LOOPBACK_DISCOVERY, **env}
    command = [sys.executable, "-m", MODULE, "--output", os.fspath(output),
               "--topics", *topics]
    if duration is not None:
        command += ["--duration", str(duration)]
    if overwrite:
        command.append("--overwrite")
    command += list(extra_args)
    return subprocess.Popen(command, env=child_env, **popen_kwargs)


def stop_recording(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGINT (the recorder finishes its file), then SIGKILL after `timeout` s -> exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


if __name__ == "__main__":
    sys.exit(main())
