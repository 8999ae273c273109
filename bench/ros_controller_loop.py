"""The impedance controller node's loop over ROS 2: achieved rate, period jitter, tick cost,
joint-state -> torque latency, with the twin as the arm.

    .venv/bin/python bench/ros_controller_loop.py [--seconds 30] [--domain 97]

Brings up the twin and the controller (twin bring-up, real DDS, loopback discovery), holds the
arm still at a commanded pose for --seconds and samples the controller's status once per second
(each sample: the last 1 s of ticks, hardware/controller_node.STATS_WINDOW). Baselines measured in
the same run:
  - "bare timer": an rclpy node with the same 1 kHz timer and executor that does nothing
    (what rclpy alone achieves here), for the rate and the period jitter;
  - "no ROS": the same ArmModel + ControlTick work in a plain Python loop, for the tick cost;
  - the controller again with rclpy's SingleThreadedExecutor (ROBO_RL_ROS_EXECUTOR=single),
    for the executor choice.
Latency, composed from measured pieces (the command topic carries no stamp): JointState
transfer (twin header stamp -> receipt in this process, same clock), the state's age when the
tick starts, the tick's cost (publish included), and one more transfer for the command.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

BARE_TIMER = textwrap.dedent("""
    import sys, time, rclpy
    from robo_rl.hardware.ros import fast_executor
    rclpy.init()
    node = rclpy.create_node("bare_timer")
    stamps = []
    node.create_timer(0.001, lambda: stamps.append(time.monotonic()))
    ex = fast_executor(); ex.add_node(node)
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        ex.spin_once(timeout_sec=0.1)
    p = __import__("numpy").diff(stamps)
    print(len(stamps) / float(sys.argv[1]), __import__("numpy").percentile(p, 99) * 1e3,
          p.max() * 1e3, time.process_time() / float(sys.argv[1]) * 100)
""")


def tick_cost_without_ros(iterations: int = 5000) -> float:
    """Mean seconds of ArmModel.state + ControlTick.step (the node's tick work, no ROS)."""
    from robo_rl.controllers import (CartesianImpedanceController, ControlTick, EnergyTank,
                                     PassivityFilter, SafetyLimits)
    from robo_rl.hardware.arm_model import ArmModel
    from robo_rl.tasks import make_task

    task = make_task("reach", energy_tank=True)
    model = ArmModel("reach")
    q = model.task.data.qpos[:model.n_joints].copy()
    qd = np.zeros(model.n_joints)
    tick = ControlTick(PassivityFilter(CartesianImpedanceController(task.config.impedance),
                                       EnergyTank(task.config.tank)),
                       SafetyLimits(task.safety.params))
    tick.reset(model.state(q, qd, copy=True))
    wrench = [0.0] * 6
    start = time.perf_counter()
    for _ in range(iterations):
        tick.step(model.state(q, qd), wrench, 0.001)
    return (time.perf_counter() - start) / iterations


def run_controller(seconds: float, domain: int, executor: str) -> dict:
    from robo_rl.hardware.config import RobotEnvConfig
    from robo_rl.hardware.env_client import RobotLink
    from robo_rl.hardware.launcher import bring_up
    from robo_rl.hardware.ros import stamp_ns
    from robo_rl.tasks import make_task

    os.environ["ROBO_RL_ROS_EXECUTOR"] = executor
    task_env = make_task("reach", energy_tank=True)
    hw = RobotEnvConfig(kind="twin", domain_id=domain)
    procs = bring_up(hw, "reach", task_env, log_dir=Path(tempfile.mkdtemp(prefix="bench_ros_")))
    transfers: list[float] = []

    class Link(RobotLink):
        def _on_joint_state(self, msg) -> None:
            transfers.append(self.node.get_clock().now().nanoseconds - stamp_ns(msg.header.stamp))
            super()._on_joint_state(msg)

    link = Link(hw, hw.joint_names)
    samples = []
    try:
        deadline = time.monotonic() + 60
        while link.latest()[3].get("state") not in ("running", "holding"):
            assert time.monotonic() < deadline, f"controller never ran: {link.latest()[3]}"
            time.sleep(0.05)
        sample = link.latest()[0]
        from robo_rl.hardware.arm_model import ArmModel

        model = ArmModel("reach")
        pos = model.state(sample.q, sample.qd, copy=True).ee_pos
        link.command(pos, model.home_quat)      # hold here: the keep-alive streams it
        time.sleep(2.0)                         # settle; then measure
        transfers.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(1.0)
            samples.append(dict(link.latest()[3]))
        cpu = {name: child.pid for name, child in procs.children.items()}
        usage = {}
        for name, pid in cpu.items():
            out = subprocess.run(["ps", "-o", "pcpu=", "-p", str(pid)], capture_output=True,
                                 text=True).stdout.strip()
            usage[name] = float(out or "nan")
    finally:
        link.close()
        procs.stop()
    values = {key: np.array([float(s[key]) for s in samples]) for key in (
        "rate_hz", "period_p99_ms", "period_max_ms", "tick_cost_mean_us", "tick_cost_p99_us",
        "joint_state_age_p50_ms", "joint_state_age_p99_ms")}
    transfer = np.array(transfers) / 1e6
    return {"samples": len(samples), "values": values, "cpu": usage,
            "transfer_p50_ms": float(np.percentile(transfer, 50)),
            "transfer_p99_ms": float(np.percentile(transfer, 99)),
            "states": sorted({s["state"] for s in samples})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--domain", type=int, default=97)
    args = parser.parse_args()
    from robo_rl.hardware.ros import ros_environment

    os.environ.update(ros_environment(args.domain, base={}))
    bare = subprocess.run([sys.executable, "-c", BARE_TIMER, str(args.seconds)],
                          capture_output=True, text=True, env=dict(os.environ))
    bare_rate, bare_p99, bare_max, bare_cpu = (float(v) for v in bare.stdout.split())
    no_ros = tick_cost_without_ros()
    results = {kind: run_controller(args.seconds, args.domain, kind)
               for kind in ("events", "single")}

    print(f"controller node over ROS 2, {args.seconds:.0f} s, twin as the arm (1 kHz), "
          f"status sampled every 1 s")
    print(f"baseline bare rclpy 1 kHz timer (EventsExecutor): {bare_rate:.1f} Hz, p99 period "
          f"{bare_p99:.3f} ms, max {bare_max:.2f} ms, CPU {bare_cpu:.0f}% of a core")
    print(f"baseline tick work without ROS (ArmModel.state + ControlTick.step): "
          f"{no_ros * 1e6:.1f} us")
    for kind, r in results.items():
        v = r["values"]
        print(f"\n[{kind} executor] states seen: {r['states']}; CPU twin "
              f"{r['cpu'].get('twin', float('nan')):.0f}%, controller "
              f"{r['cpu'].get('controller', float('nan')):.0f}% (ps, whole run)")
        print(f"  rate: median {np.median(v['rate_hz']):.1f} Hz (min {v['rate_hz'].min():.1f}); "
              f"ratio to bare timer {np.median(v['rate_hz']) / bare_rate:.3f}")
        print(f"  period p99: median {np.median(v['period_p99_ms']):.3f} ms, worst "
              f"{v['period_p99_ms'].max():.3f} ms (bare timer {bare_p99:.3f} ms); "
              f"max period {v['period_max_ms'].max():.2f} ms")
        print(f"  tick cost in the node (state, law, publish): mean "
              f"{np.median(v['tick_cost_mean_us']):.1f} us, p99 "
              f"{np.median(v['tick_cost_p99_us']):.1f} us; ratio to no-ROS "
              f"{np.median(v['tick_cost_mean_us']) / (no_ros * 1e6):.2f}")
        latency = (r["transfer_p50_ms"] + np.median(v["joint_state_age_p50_ms"])
                   + np.median(v["tick_cost_mean_us"]) / 1e3 + r["transfer_p50_ms"])
        print(f"  latency joint state -> torque (p50 pieces): transfer {r['transfer_p50_ms']:.3f}"
              f" ms + age at tick {np.median(v['joint_state_age_p50_ms']):.3f} ms + tick "
              f"{np.median(v['tick_cost_mean_us']) / 1e3:.3f} ms + transfer "
              f"{r['transfer_p50_ms']:.3f} ms = {latency:.3f} ms (p99 transfer "
              f"{r['transfer_p99_ms']:.3f} ms, p99 age "
              f"{np.median(v['joint_state_age_p99_ms']):.3f} ms)")


if __name__ == "__main__":
    main()
