"""`robo-rl dataset ...`: inspect, concatenate, and move datasets to and from Minari.

    robo-rl dataset info DIR
    robo-rl dataset concat DIR_A DIR_B --out DIR --kind medium-expert
    robo-rl dataset export-minari DIR --id robo_rl/hopper/medium-v0 [--root MINARI_ROOT]
    robo-rl dataset import-minari mujoco/hopper/medium-v0 --task gym/Hopper-v5 --out DIR [--root R] [--cast]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from robo_rl.offline.dataset import DatasetError, concatenate, read_info


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robo-rl dataset", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="what a dataset holds")
    info.add_argument("path")
    concat = commands.add_parser("concat", help="a new dataset of the sources' episodes in order")
    concat.add_argument("sources", nargs="+")
    concat.add_argument("--out", required=True)
    concat.add_argument("--kind", default="medium-expert")
    export = commands.add_parser("export-minari", help="write a dataset as a Minari dataset")
    export.add_argument("path")
    export.add_argument("--id", required=True, help="Minari dataset id, namespace/name-vN")
    export.add_argument("--root", default=None, help="Minari datasets root (default: Minari's)")
    imp = commands.add_parser("import-minari", help="a robo_rl dataset from a local Minari dataset")
    imp.add_argument("id")
    imp.add_argument("--task", required=True, help="the robo_rl task whose spaces the data must fit")
    imp.add_argument("--out", required=True)
    imp.add_argument("--root", default=None)
    imp.add_argument("--cast", action="store_true", help="convert float dtypes to the task's (D4RL float64)")
    imp.add_argument("--random-return", type=float, default=None, help="reference return of score 0")
    imp.add_argument("--expert-return", type=float, default=None, help="reference return of score 100")
    return parser


def task_env(task: str):
    """The env of a robo_rl task with its config defaults (configs/task/<task>.yaml)."""
    from robo_rl.config_schema import compose_train_config
    from robo_rl.envs import make_env
    from robo_rl.loops.common import env_config

    cfg = compose_train_config([f"task={task}"])
    return make_env(env_config(cfg.task, 0), seed=0), cfg.task


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "info":
        print(f"robo_rl dataset {args.path}\n  " + read_info(args.path).summary())
    elif args.command == "concat":
        info = concatenate(args.sources, args.out, args.kind)
        print(f"robo_rl dataset {args.out}\n  " + info.summary())
    elif args.command == "export-minari":
        from robo_rl.offline.minari_io import export_minari

        print(f"robo_rl: exported {args.path} as Minari dataset {args.id} at {export_minari(args.path, args.id, args.root)}")
    elif args.command == "import-minari":
        from robo_rl.offline.minari_io import import_minari

        if Path(args.out).exists():
            raise DatasetError(f"{args.out} exists; choose a new --out (existing data is never overwritten)")
        env, task_cfg = task_env(args.task)
        try:
            info = import_minari(args.id, args.out, args.task, env.observation_space, env.action_space,
                                 root=args.root, frame_stack=int(task_cfg.frame_stack), cast=args.cast,
                                 random_return=args.random_return, expert_return=args.expert_return)
        finally:
            env.close()
        print(f"robo_rl dataset {args.out}\n  " + info.summary())
    return 0
