"""robo_rl as a ROS 2 package (no rclpy or launch needed here).

`pip install robo_rl` (editable or not) puts, into the install prefix (`sys.prefix` in a venv):
  share/ament_index/resource_index/packages/robo_rl   the ament index marker
  share/robo_rl/package.xml                           format 3, build_type ament_python
  share/robo_rl/launch/*.launch.xml                   twin, real, policy
  lib/robo_rl/<executable>                            what `ros2 run robo_rl <executable>` runs
The sources are hardware/ament/ and hardware/launch/, listed in pyproject's data-files
(hardware/ament/build_backend.py adds them to editable wheels, where setuptools leaves them out).

The PyPI ROS 2 wheels install their own index into the same prefix but set no AMENT_PREFIX_PATH
(their bootstrap only sets LD_LIBRARY_PATH), so ament_index_python, `ros2 run` and
`ros2 launch` find robo_rl (and rclpy's packages) only with the prefix on it:
    export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
`ament_environment()` gives a child process that environment.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import site
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

PACKAGE = "robo_rl"
# `ros2 run robo_rl <name>` -> the function it calls (hardware/ament/<name> says the same).
EXECUTABLES: dict[str, str] = {
    "controller_node": "robo_rl.hardware.controller_node:main",
    "twin_node": "robo_rl.hardware.twin_node:main",
    "policy_node": "robo_rl.hardware.policy_node:main",
    "recorder": "robo_rl.hardware.recorder:main",
    "ros_up": "robo_rl.hardware.launcher:main",
}
# The policy node's ROS 2 parameters (the node declares exactly these).
POLICY_PARAMETERS: tuple[str, ...] = ("checkpoint", "rate_hz", "task")
# Declared by rclpy on every node.
COMMON_PARAMETERS: tuple[str, ...] = ("use_sim_time",)

MARKER = Path("share", "ament_index", "resource_index", "packages", PACKAGE)
SOURCE_AMENT_DIR = Path(__file__).resolve().parent / "ament"
SOURCE_LAUNCH_DIR = Path(__file__).resolve().parent / "launch"
LAUNCH_TAGS = {"launch", "arg", "node", "param", "remap", "group", "let", "set_env", "env",
               "include"}
_VAR = re.compile(r"\$\((?:var|arg)\s+([^)\s]+)\s*\)")


def ament_prefix() -> Path:
    """The install prefix holding robo_rl's ament index marker (what AMENT_PREFIX_PATH must
    contain). LookupError, saying how to fix it, when robo_rl's ament files are not installed."""
    candidates = []
    for dist in metadata.distributions(name=PACKAGE):
        for file in dist.files or ():
            if file.as_posix().endswith(MARKER.as_posix()):
                candidates.append(Path(os.path.normpath(dist.locate_file(file))))
    candidates += [Path(p) / MARKER for p in (sys.prefix, site.getuserbase())]
    for marker in candidates:
        if marker.is_file():
            return marker.parents[4]
    raise LookupError(f"robo_rl's ament index marker ({MARKER}) is installed nowhere "
                      f"(looked in {sys.prefix}): re-install robo_rl, e.g. pip install -e '.[ros]'")


def ament_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `env` (default os.environ) whose AMENT_PREFIX_PATH starts with ament_prefix()."""
    env = dict(os.environ if env is None else env)
    prefix = str(ament_prefix())
    parts = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if prefix not in parts:
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([prefix, *parts])
    return env


def installed_executables(prefix: Path | None = None) -> dict[str, Path]:
    """{name: path} of the executables under <prefix>/lib/robo_rl."""
    directory = Path(prefix or ament_prefix()) / "lib" / PACKAGE
    return {p.name: p for p in sorted(directory.iterdir()) if p.is_file()} if directory.is_dir() else {}


def executable_target(path: Path) -> str:
    """'module:function' that the lib/robo_rl executable at `path` imports and calls."""
    text = Path(path).read_text()
    found = re.findall(r"^from\s+([\w.]+)\s+import\s+(\w+)\s*$", text, re.MULTILINE)
    if len(found) != 1 or f"sys.exit({found[0][1]}())" not in text:
        raise ValueError(f"{path}: expected one `from <module> import <function>` and "
                         f"`sys.exit(<function>())`, found {found}")
    return f"{found[0][0]}:{found[0][1]}"


def node_parameters(executable: str) -> tuple[str, ...]:
    """The flat ROS 2 parameter names the node behind `executable` declares."""
    from . import params

    if executable == "controller_node":
        return tuple(params.parameter_names(params.CONTROLLER_GROUPS))
    if executable == "twin_node":
        return tuple(params.parameter_names(params.TWIN_GROUPS))
    if executable == "policy_node":
        return POLICY_PARAMETERS
    return ()


def launch_files(directory: Path | None = None) -> list[Path]:
    """The *.launch.xml files in `directory` (default: robo_rl's own, hardware/launch/)."""
    return sorted(Path(directory or SOURCE_LAUNCH_DIR).glob("*.launch.xml"))


def check_launch_file(path: Path, executables: set[str] | None = None) -> list[str]:
    """What is wrong in a launch file, one sentence each ([] when nothing): not XML, a tag
    launch does not have, `$(var x)` without `<arg name="x">`, a node of another package or an
    executable not in `executables` (default: those installed under lib/robo_rl), a <param> the
    node does not declare, a <remap> of a topic robo_rl's nodes do not use (TopicNames)."""
    from .config import TopicNames

    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        return [f"{path.name}: not well-formed XML: {error}"]
    errors = []
    if root.tag != "launch":
        errors.append(f"{path.name}: the root element is <{root.tag}>, not <launch>")
    if executables is None:
        executables = set(installed_executables())
    declared = {arg.get("name") for arg in root.iter("arg")}
    for element in root.iter():
        if element.tag not in LAUNCH_TAGS:
            errors.append(f"{path.name}: <{element.tag}> is no launch tag "
                          f"({', '.join(sorted(LAUNCH_TAGS))})")
        for attribute, value in element.attrib.items():
            for name in _VAR.findall(value):
                if name not in declared:
                    errors.append(f"{path.name}: <{element.tag} {attribute}=\"{value}\"> uses "
                                  f"$(var {name}), which no <arg> declares")
    topics = set(dataclasses.asdict(TopicNames()).values())
    for node in root.iter("node"):
        package, executable = node.get("pkg"), node.get("exec")
        label = f"{path.name}: node {node.get('name') or executable!r}"
        if package != PACKAGE:
            errors.append(f"{label}: pkg={package!r}, not {PACKAGE!r}")
            continue
        if executable not in executables:
            errors.append(f"{label}: exec={executable!r} is not installed under lib/{PACKAGE} "
                          f"(there: {', '.join(sorted(executables)) or 'nothing'})")
            continue
        known = set(node_parameters(executable)) | set(COMMON_PARAMETERS)
        for param in node.iter("param"):
            name = param.get("name")
            if name is None:
                if param.get("from") is None:
                    errors.append(f"{label}: <param> without name= or from=")
                continue
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                errors.append(f"{label}: {executable} has no parameter {name!r}{hint}")
            if param.get("value") is None:
                errors.append(f"{label}: <param name=\"{name}\"> has no value=")
        for remap in node.iter("remap"):
            if remap.get("from") not in topics:
                errors.append(f"{label}: <remap from=\"{remap.get('from')}\"> is no topic of "
                              f"robo_rl's nodes (TopicNames: {', '.join(sorted(topics))})")
    return errors
