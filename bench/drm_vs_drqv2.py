"""DrM vs DrQ-v2 at equal agent steps, 3+ independent seeds: return AND actor dormant-ratio curves.

    .venv/bin/python bench/drm_vs_drqv2.py --task dmc/hopper_hop --seeds 0 1 2 --steps 40000 \
        --workers 2 [--pixels] [--table-only]

Both learners run through the user's path (compose_train_config + robo_rl.loops.online.train,
i.e. `robo-rl train agent=<drqv2|drm> ...`), each run in its own directory under --out
(default bench/results/drm_vs_drqv2/<task>/<agent>_s<seed>), so a stopped benchmark resumes
its runs (resume=auto). The baseline is DrQ-v2 with the same networks, replay ratio, noise
schedule and seeds. Curves: eval return (eval.csv) and the actor's dormant ratio as the loop's
plasticity probe logs it (plasticity.csv, tau 0.025) - the same probe for both learners.

Budget scaling (state observations by default, identity encoder + DrQ-v2 trunk): the papers
run 1.5M agent steps with a perturbation every 100k and the std schedule over 500k; a 2-core
CPU affords ~40k steps per run, so perturb_every and std_steps are scaled down (flags below)
and hidden layers are 256 wide (1024 costs ~8x per update on a CPU core).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_runs import curves as run_curves, finish_report, run_comparison, run_parser, train_once  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "drm_vs_drqv2"
AGENTS = ("drqv2", "drm")


def overrides(args, agent: str, seed: int) -> list[str]:
    values = [f"agent={agent}", f"task={args.task}", f"seed={seed}", f"train.steps={args.steps}",
              f"train.seed_steps={args.seed_steps}", "train.replay_ratio=0.5",
              f"train.eval_every={args.eval_every}", f"train.eval_episodes={args.eval_episodes}",
              f"train.checkpoint_every={args.eval_every}", "train.video=false", "train.progress=false",
              "threads=1", "device=cpu", f"plasticity.every={args.probe_every}",
              f"agent.hidden_dims=[{args.hidden},{args.hidden}]", f"agent.std_steps={args.std_steps}"]
    if agent == "drm":
        values += [f"agent.perturb_every={args.perturb_every}",
                   f"agent.awaken_after_steps={args.seed_steps}"]
    if args.pixels:
        values += ["preset=pixels_cpu", f"train.steps={args.steps}", f"train.seed_steps={args.seed_steps}"]
    return values


def run_one(job) -> str:
    args, agent, seed = job
    summary = train_once(args.out / agent / f"s{seed}", overrides(args, agent, seed))
    return f"{agent} seed {seed}: last eval {summary['last_eval']:.1f}"


def curves(args, agent: str, filename: str, key: str):
    """(steps, seeds x steps) on the steps every seed logged."""
    return run_curves([args.out / agent / f"s{seed}" for seed in args.seeds], filename, key)


def report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ret_ax, dorm_ax) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    lines = ["| agent | seeds | final eval return (mean +/- std) | best eval | actor dormant ratio: mean over run, final |",
             "|---|---|---|---|---|"]
    for agent in AGENTS:
        steps, returns = curves(args, agent, "eval.csv", "return_mean")
        probe_steps, dormant = curves(args, agent, "plasticity.csv", "actor_dormant_ratio")
        if steps is None or probe_steps is None:
            continue
        for ax, x, y in ((ret_ax, steps, returns), (dorm_ax, probe_steps, dormant)):
            mean, std = y.mean(0), y.std(0)
            ax.plot(x, mean, label=f"{agent} ({len(y)} seeds)")
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        lines.append(f"| {agent} | {len(returns)} | {returns[:, -1].mean():.1f} +/- {returns[:, -1].std():.1f} "
                     f"(step {int(steps[-1])}) | {returns.max(1).mean():.1f} | {dormant.mean():.3f}, "
                     f"{dormant[:, -1].mean():.3f} +/- {dormant[:, -1].std():.3f} |")
    ret_ax.set(xlabel="agent steps", ylabel="eval return", title=f"{args.task}: return")
    dorm_ax.set(xlabel="agent steps", ylabel="actor dormant ratio (tau 0.025)", title="dormant ratio")
    png = args.out / "drm_vs_drqv2.png"
    finish_report(fig, (ret_ax, dorm_ax), png, lines)


def main() -> None:
    parser = run_parser(__doc__, task="dmc/hopper_hop", steps=40_000, seed_steps=2000, eval_every=4000)
    parser.add_argument("--probe-every", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--std-steps", type=int, default=20_000)
    parser.add_argument("--perturb-every", type=int, default=10_000)
    parser.add_argument("--pixels", action="store_true", help="pixels through preset=pixels_cpu")
    run_comparison(parser.parse_args(), RESULTS, AGENTS, run_one, report)


if __name__ == "__main__":
    main()
