"""Bring-up without `ros2 launch`: the twin and the controller node (and a recorder) as child
processes with loopback-only discovery, for pip-only installs and for `hardware=twin`.

    robo-rl ros up twin [task=reach] [domain_id=42] [record=session.mcap]

Parameters reach the nodes as a ROS 2 params file (what `--params-file` reads), built from the
same dataclasses the simulated task uses: the controller runs the task's impedance, tank and
safety settings, so the twin session and the simulation differ only in the transport and the
real-time physics.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from .config import ControllerNodeConfig, RobotEnvConfig, TwinConfig
from .params import CONTROLLER_GROUPS, TWIN_GROUPS, defaults
from .ros import ros_environment

STARTUP_CHECK_S = 1.0      # a child that dies within this is reported with its log
STOP_TIMEOUT_S = 5.0       # SIGINT, then SIGKILL after this
LOG_TAIL_LINES = 15


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the parent dies (a crashed trainer must not
    leave a twin and a controller running on the domain)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: Processes.stop() still ends them on a clean exit


def controller_parameters(task: str, task_env, hw: RobotEnvConfig,
                          autostart: bool = True) -> dict[str, Any]:
    """The controller node's parameters for arm task `task_env` (its impedance, tank, safety)."""
    node = ControllerNodeConfig(task=task, base_frame=hw.base_frame,
                                joint_names=tuple(hw.joint_names),
                                energy_tank=bool(task_env.config.energy_tank), autostart=autostart,
                                joint_state_timeout=hw.twin_joint_state_timeout)
    return defaults(CONTROLLER_GROUPS, **{"": node, "impedance": task_env.config.impedance,
                                          "safety": task_env.safety.params,
                                          "tank": task_env.config.tank, "topics": hw.topics})


def twin_parameters(task: str, hw: RobotEnvConfig, image_rate_hz: float = 0.0) -> dict[str, Any]:
    twin = TwinConfig(task=task, joint_names=tuple(hw.joint_names), image_rate_hz=image_rate_hz)
    return defaults(TWIN_GROUPS, **{"": twin, "topics": hw.topics})


def write_params_file(path: Path, node_name: str, params: dict[str, Any]) -> Path:
    """A `--params-file` YAML. Empty arrays are left out (rcl's YAML parser rejects them; the
    node's default, None, is the same)."""
    kept = {k: v for k, v in params.items() if not (isinstance(v, list) and not v)}
    path.write_text(yaml.safe_dump({node_name: {"ros__parameters": kept}}, sort_keys=False))
    return path


class Processes:
    """Child processes of one bring-up; stop() ends them (SIGINT, then SIGKILL)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        child = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        self.children[name] = child
        return child

    def log_tail(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def check_alive(self) -> None:
        for name, child in self.children.items():
            if child.poll() is not None:
                raise RuntimeError(f"{name} exited with code {child.returncode}; its log "
                                   f"({self.log_dir / (name + '.log')}) ends:\n"
                                   f"{self.log_tail(name)}")

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in self.children.values():
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()


def node_argv(module: str, params_file: Path) -> list[str]:
    return [sys.executable, "-m", module, "--ros-args", "--params-file", str(params_file)]


def bring_up(hw: RobotEnvConfig, task: str, task_env, record: str | None = None,
             log_dir: Path | None = None, image_rate_hz: float = 0.0,
             controller_overrides: dict[str, Any] | None = None) -> Processes:
    """Start twin + controller (+ recorder) for arm task `task`; -> Processes (call stop()).
    controller_overrides: flat controller-node parameters on top of the task's (tests, labs)."""
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="robo_rl_ros_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    env = ros_environment(hw.domain_id)
    env.setdefault("PYTHONUNBUFFERED", "1")
    from .controller_node import NODE_NAME as CONTROLLER
    from .twin_node import NODE_NAME as TWIN

    procs = Processes(log_dir)
    try:
        twin_file = write_params_file(log_dir / "twin.yaml", TWIN,
                                      twin_parameters(task, hw, image_rate_hz))
        ctl_file = write_params_file(log_dir / "controller.yaml", CONTROLLER,
                                     {**controller_parameters(task, task_env, hw),
                                      **(controller_overrides or {})})
        procs.start("twin", node_argv("robo_rl.hardware.twin_node", twin_file), env)
        procs.start("controller", node_argv("robo_rl.hardware.controller_node", ctl_file), env)
        if record:
            from .recorder import record_process

            topics = [hw.topics.joint_states, hw.topics.effort_commands,
                      hw.topics.equilibrium_pose, hw.topics.wrench, hw.topics.status, hw.topics.scene]
            procs.children["recorder"] = record_process(record, topics, env)
        time.sleep(STARTUP_CHECK_S)
        procs.check_alive()
    except BaseException:
        procs.stop()
        raise
    return procs


def main(argv: list[str] | None = None) -> int:
    """`robo-rl ros up twin [task=reach] [domain_id=N] [record=PATH]`: run until Ctrl-C."""
    args = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: robo-rl ros up twin [task=reach] [domain_id=42] [record=session.mcap]"
    if len(args) < 2 or args[0] != "up" or args[1] != "twin":
        print(usage, file=sys.stderr)
        return 2
    options = {}
    for arg in args[2:]:
        key, sep, value = arg.partition("=")
        if not sep or key not in ("task", "domain_id", "record"):
            print(f"robo-rl: error: unknown argument {arg!r}\n{usage}", file=sys.stderr)
            return 2
        options[key] = value
    try:
        hw = RobotEnvConfig(domain_id=int(options.get("domain_id", RobotEnvConfig.domain_id)))
        task = options.get("task", "reach")
        from robo_rl.tasks import make_task

        task_env = make_task(task)
        procs = bring_up(hw, task, task_env, record=options.get("record"))
    except (ValueError, RuntimeError, OSError) as error:
        print(f"robo-rl: error: {error}", file=sys.stderr)
        return 2
    print(f"robo-rl: twin + controller up (arm/{task}, ROS_DOMAIN_ID={hw.domain_id}, loopback "
          f"discovery; logs in {procs.log_dir}); Ctrl-C stops them", file=sys.stderr, flush=True)
    try:
        while True:
            procs.check_alive()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as error:
        print(f"robo-rl: error: {error}", file=sys.stderr)
        return 1
    finally:
        procs.stop()


if __name__ == "__main__":
    raise SystemExit(main())
