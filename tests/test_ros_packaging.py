"""robo_rl as a ROS 2 package: what `pip install -e '.[test,ros]'` (make test) put into the prefix
(ament index marker, share/robo_rl/package.xml and launch files, lib/robo_rl executables), that
ament_index_python finds it with AMENT_PREFIX_PATH set as docs/ros.md says, and that the launch
files name only installed executables and parameters the nodes declare."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest

from robo_rl.hardware import packaging, params

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = {"twin.launch.xml", "real.launch.xml", "policy.launch.xml"}


@pytest.fixture(scope="module")
def prefix() -> Path:
    try:
        return packaging.ament_prefix()
    except LookupError as error:
        pytest.fail(f"{error} (make test installs it; a venv installed before the ROS packaging "
                    "needs that install once more)")


def _nodes(path: Path) -> dict[str, ET.Element]:
    return {node.get("exec"): node for node in ET.parse(path).getroot().iter("node")}


def _params(node: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in node.iter("param")}


# --- (a) launch files ----------------------------------------------------------------------------

def test_launch_files_name_installed_executables_and_declared_parameters(prefix):
    files = packaging.launch_files()
    assert {f.name for f in files} == LAUNCH_FILES
    for path in files:
        assert packaging.check_launch_file(path) == [], path.name
        installed = prefix / "share" / "robo_rl" / "launch" / path.name
        assert installed.is_file(), f"{installed} missing: re-install robo_rl"
        assert installed.read_bytes() == path.read_bytes(), \
            f"{installed} is older than hardware/launch/{path.name}: re-install (make test does)"


def test_launch_files_bring_up_what_they_say():
    twin = _nodes(packaging.SOURCE_LAUNCH_DIR / "twin.launch.xml")
    assert set(twin) == {"twin_node", "controller_node"}
    assert _params(twin["controller_node"])["autostart"] == "true"
    real = _nodes(packaging.SOURCE_LAUNCH_DIR / "real.launch.xml")
    assert set(real) == {"controller_node"}
    assert {"topics.joint_states", "topics.effort_commands"} <= set(_params(real["controller_node"]))
    root = ET.parse(packaging.SOURCE_LAUNCH_DIR / "policy.launch.xml").getroot()
    policy = _nodes(packaging.SOURCE_LAUNCH_DIR / "policy.launch.xml")
    assert set(policy) == {"policy_node"}
    checkpoint = [a for a in root.iter("arg") if a.get("name") == "checkpoint"]
    assert checkpoint and checkpoint[0].get("default") is None  # required: `checkpoint:=...`
    assert _params(policy["policy_node"])["checkpoint"] == "$(var checkpoint)"


def test_parameter_names_come_from_the_node_configs():
    assert packaging.POLICY_PARAMETERS == ("checkpoint", "rate_hz", "task")
    assert packaging.node_parameters("controller_node") == tuple(
        params.parameter_names(params.CONTROLLER_GROUPS))
    assert "impedance.translational_stiffness" in packaging.node_parameters("controller_node")
    assert packaging.node_parameters("twin_node") == tuple(params.parameter_names(params.TWIN_GROUPS))


def test_policy_node_declares_the_policy_parameters():
    if importlib.util.find_spec("robo_rl.hardware.policy_node") is None:
        pytest.skip("robo_rl.hardware.policy_node is not written yet")
    from robo_rl.hardware import policy_node

    declared = getattr(policy_node, "PARAMETERS", None)
    if declared is None:
        pytest.skip("policy_node keeps no module-level PARAMETERS to compare with")
    assert set(packaging.POLICY_PARAMETERS) <= set(declared)


@pytest.mark.parametrize("file, old, new, expected", [
    ("twin.launch.xml", '<param name="rate_hz"', '<param name="rate_hzz"', "twin_node has no parameter 'rate_hzz' (did you mean 'rate_hz'?)"),
    ("real.launch.xml", '<param name="base_frame"', '<param name="impedance.stiffness"', "no parameter 'impedance.stiffness'"),
    ("policy.launch.xml", 'name="checkpoint" value', 'name="seed" value', "policy_node has no parameter 'seed'"),
    ("twin.launch.xml", 'exec="twin_node"', 'exec="twin"', "exec='twin' is not installed under lib/robo_rl"),
    ("real.launch.xml", 'pkg="robo_rl"', 'pkg="franka_example_controllers"', "not 'robo_rl'"),
    ("policy.launch.xml", "$(var checkpoint)", "$(var ckpt)", "$(var ckpt), which no <arg> declares"),
    ("real.launch.xml", '<param name="topics.wrench"', '<remap from="/ft_sensor/wrenchh" to="x"/><param name="topics.wrench"',
     '<remap from="/ft_sensor/wrenchh"> is no topic'),
    ("real.launch.xml", '<param name="topics.wrench"', '<param name="topics.wrenches"',
     "no parameter 'topics.wrenches' (did you mean 'topics.wrench'?)"),
    ("twin.launch.xml", "<param ", "<parm ", "<parm> is no launch tag"),
    ("twin.launch.xml", "</launch>", "", "not well-formed XML"),
])
def test_launch_checker_fails_on_a_wrong_name(prefix, tmp_path, file, old, new, expected):
    text = (packaging.SOURCE_LAUNCH_DIR / file).read_text()
    assert old in text
    broken = tmp_path / file
    broken.write_text(text.replace(old, new, 1))
    errors = packaging.check_launch_file(broken)
    assert any(expected in e for e in errors), errors


# --- (b) ament index -----------------------------------------------------------------------------

def test_ament_prefix_is_the_venv_and_holds_the_marker(prefix):
    assert (prefix / packaging.MARKER).is_file()
    if sys.prefix != sys.base_prefix:  # a venv, as make test's: pip put the data files there
        assert prefix == Path(sys.prefix)


def test_ament_environment_prepends_the_prefix_once(prefix):
    assert packaging.ament_environment({})["AMENT_PREFIX_PATH"] == str(prefix)
    env = packaging.ament_environment({"AMENT_PREFIX_PATH": "/opt/ros/x"})
    assert env["AMENT_PREFIX_PATH"] == f"{prefix}{os.pathsep}/opt/ros/x"
    assert packaging.ament_environment(env) == env


def test_ament_index_python_resolves_robo_rl(prefix, monkeypatch):
    pytest.importorskip("ament_index_python", reason="the [ros] extra is not installed")
    from ament_index_python import get_package_prefix, get_package_share_directory, get_resource

    # docs/ros.md: export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
    monkeypatch.setenv("AMENT_PREFIX_PATH", packaging.ament_environment({})["AMENT_PREFIX_PATH"])
    assert Path(get_package_prefix("robo_rl")) == prefix
    share = Path(get_package_share_directory("robo_rl"))
    assert share == prefix / "share" / "robo_rl" and (share / "package.xml").is_file()
    assert get_resource("packages", "robo_rl") == ("", str(prefix))
    # the same variable finds the PyPI ROS wheels' own packages (same prefix)
    assert Path(get_package_prefix("rclpy")) == prefix


def test_package_xml(prefix, monkeypatch):
    installed = prefix / "share" / "robo_rl" / "package.xml"
    assert installed.read_bytes() == (packaging.SOURCE_AMENT_DIR / "package.xml").read_bytes(), \
        "installed package.xml is stale: re-install"
    root = ET.parse(installed).getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "robo_rl"
    assert root.findtext("version") == metadata.version("robo_rl")
    assert root.findtext("export/build_type") == "ament_python"
    depends = [e.text for e in root.iter("exec_depend")]
    assert {"rclpy", "std_msgs", "geometry_msgs", "sensor_msgs", "std_srvs", "lifecycle_msgs",
            "diagnostic_msgs"} <= set(depends)
    pytest.importorskip("ament_index_python", reason="the [ros] extra is not installed")
    from ament_index_python import PackageNotFoundError, get_package_prefix

    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    missing = []
    for name in depends:
        try:
            get_package_prefix(name)
        except PackageNotFoundError:
            missing.append(name)
    assert not missing, f"exec_depends the [ros] extra does not install: {missing}"


# --- (c) executables -----------------------------------------------------------------------------

def test_executables_are_installed_executable_and_documented(prefix):
    installed = packaging.installed_executables(prefix)
    assert set(installed) == set(packaging.EXECUTABLES)
    for name, path in installed.items():
        assert os.access(path, os.X_OK), f"{path} is not executable"
        assert packaging.executable_target(path) == packaging.EXECUTABLES[name]
        source = packaging.SOURCE_AMENT_DIR / name
        assert os.access(source, os.X_OK), f"{source} lost its executable bit"
        assert path.read_bytes() == source.read_bytes(), f"{path} is stale: re-install"


def _header(path: Path) -> list[str]:
    """The sh part of an executable (up to the closing ''' line), comments left out."""
    lines = path.read_text().splitlines()
    end = lines.index("'''", 1)
    return [line for line in lines[: end + 1] if not line.startswith("# ")]


def test_executables_run_the_interpreter_of_their_prefix(tmp_path):
    headers = {name: _header(packaging.SOURCE_AMENT_DIR / name) for name in packaging.EXECUTABLES}
    assert len({tuple(h) for h in headers.values()}) == 1, headers
    header = next(iter(headers.values()))
    fake = tmp_path / "prefix"
    (fake / "bin").mkdir(parents=True)
    (fake / "lib" / "robo_rl").mkdir(parents=True)
    probe = fake / "lib" / "robo_rl" / "probe"
    probe.write_text("\n".join(header) + "\nimport sys\nprint('args', sys.argv[1:])\n")
    probe.chmod(0o755)

    def wrapper(path: Path, tag: str) -> None:
        path.write_text(f'#!/bin/sh\necho {tag} >&2\nexec "{sys.executable}" "$@"\n')
        path.chmod(0o755)

    wrapper(fake / "bin" / "python3", "prefix-python")
    run = subprocess.run([str(probe), "--help", "x y"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "prefix-python" in run.stderr and "args ['--help', 'x y']" in run.stdout
    # no <prefix>/bin/python3 (a system prefix without one): python3 on PATH
    (fake / "bin" / "python3").unlink()
    path_bin = tmp_path / "path_bin"
    path_bin.mkdir()
    wrapper(path_bin / "python3", "path-python")
    env = {**os.environ, "PATH": f"{path_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([str(probe)], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert "path-python" in run.stderr and "args []" in run.stdout


@pytest.mark.parametrize("name", sorted(packaging.EXECUTABLES))
def test_executable_target_is_importable(name):
    module, function = packaging.EXECUTABLES[name].split(":")
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not written yet (lib/robo_rl/{name} calls {module}:{function}; "
                    "the node's author adds the module)")
    pytest.importorskip("rclpy", reason="the [ros] extra is not installed")
    target = getattr(importlib.import_module(module), function, None)
    assert callable(target), f"{module} has no function {function}() for lib/robo_rl/{name}"
