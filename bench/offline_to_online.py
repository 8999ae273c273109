"""Offline-to-online: eval return vs online agent steps for SAC from scratch, SAC with a dataset
mixed into every batch (RLPD-style, half of each batch), and TD3 and TD3+BC (its BC term on the
mixed batches kept online) initialised from an offline A2PR run (its networks and state normaliser;
the dataset mixed in the same way), 3+ seeds each.

    .venv/bin/python bench/offline_d4rl.py ...            # first: datasets and offline A2PR runs
    .venv/bin/python bench/offline_to_online.py --task gym/Hopper-v5 --dataset medium-replay --steps 5000

Every run is `robo-rl train` through compose_train_config + robo_rl.loops.online.train in
bench/results/offline/online/<task>/<dataset>/<variant>/s<seed> (resumable). The TD3 run takes
A2PR's layer sizes and discount (an A2PR checkpoint initialises a TD3 run of the same shapes) and
starts acting with the offline policy at once (train.seed_steps=0); the SAC runs take the usual
--seed-steps uniform actions first. A2PR itself online costs ~0.1 s per update on one core (its
750-wide VAE), more than this benchmark could afford, so its offline policy is fine-tuned by TD3.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_runs import curves, finish_report, run_comparison, run_parser, train_once  # noqa: E402
from offline_d4rl import A2PR_PRESETS, RESULTS, run_dir as offline_run_dir, slug  # noqa: E402

VARIANTS = ("sac", "sac_dataset", "td3_from_a2pr", "td3_bc_from_a2pr")


def overrides(args, variant: str, seed: int) -> list[str]:
    from robo_rl.agents import agent_config

    dataset = RESULTS / "datasets" / slug(args.task) / args.dataset
    values = [f"task={args.task}", f"seed={seed}", f"train.steps={args.steps}", f"train.eval_every={args.eval_every}",
              f"train.eval_episodes={args.eval_episodes}", f"train.checkpoint_every={args.eval_every}",
              "train.video=false", "train.progress=false", "threads=1", "device=cpu", "plasticity.every=0"]
    if variant == "sac":
        return [*values, "agent=sac", f"train.seed_steps={args.seed_steps}"]
    if variant == "sac_dataset":
        return [*values, "agent=sac", f"train.seed_steps={args.seed_steps}", f"dataset={dataset}"]
    source = agent_config({"name": A2PR_PRESETS.get(args.task, "a2pr")})
    checkpoint = offline_run_dir(args.task, args.dataset, "a2pr", seed) / "checkpoints" / "latest.pt"
    learner = variant.removesuffix("_from_a2pr")  # td3, or td3_bc: the BC term kept online
    return [*values, f"agent={learner}", f"agent.hidden_dims={list(source.hidden_dims)}",
            f"agent.actor_hidden_dims={list(source.actor_hidden_dims)}", f"agent.gamma={source.gamma}",
            "train.seed_steps=0", f"init_from={checkpoint}", f"dataset={dataset}"]


def run_one(job) -> str:
    args, variant, seed = job
    summary = train_once(args.out / variant / f"s{seed}", overrides(args, variant, seed))
    return f"{variant} seed {seed}: last eval {summary['last_eval']:.1f}"


def report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robo_rl.offline.dataset import read_info

    info = read_info(RESULTS / "datasets" / slug(args.task) / args.dataset)
    fig, ax = plt.subplots(figsize=(6, 4))
    lines = [f"{args.task}, dataset {args.dataset} ({info.transitions} transitions); eval return (normalised score) "
             f"mean +/- std over seeds {args.seeds}", "",
             "| variant | step 0 | mid-run | final | mean over the run |", "|---|---|---|---|---|"]
    for variant in VARIANTS:
        steps, returns = curves([args.out / variant / f"s{s}" for s in args.seeds], "eval.csv", "return_mean")
        if steps is None:
            continue
        mid = len(steps) // 2

        def cell(values):
            return (f"{values.mean():.1f} +/- {values.std():.1f} "
                    f"({info.normalized_score(float(values.mean())):.1f})")

        lines.append(f"| {variant} | {cell(returns[:, 0])} | {cell(returns[:, mid])} (step {int(steps[mid])}) | "
                     f"{cell(returns[:, -1])} | {returns.mean():.1f} |")
        ax.plot(steps, returns.mean(0), label=variant)
        ax.fill_between(steps, returns.min(0), returns.max(0), alpha=0.2)
    ax.set_xlabel("online agent steps")
    ax.set_ylabel("eval return")
    ax.set_title(f"{args.task}: offline-to-online ({args.dataset})")
    finish_report(fig, [ax], args.out / "offline_to_online.png", lines)


def main() -> None:
    parser = run_parser(__doc__, task="gym/Hopper-v5", steps=5000, seed_steps=1000, eval_every=500)
    parser.add_argument("--dataset", default="medium-replay")
    args = parser.parse_args()
    args.out = args.out or RESULTS / "online" / slug(args.task) / args.dataset
    run_comparison(args, RESULTS / "online", VARIANTS, run_one, report)


if __name__ == "__main__":
    main()
