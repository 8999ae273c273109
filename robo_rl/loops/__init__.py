"""Training loops: online (loops/online.py) and offline (loops/offline.py)."""
from __future__ import annotations

from pathlib import Path


def run_training(cfg, run_dir: Path):
    """What `robo-rl train` runs: the config's checks, then the loop its `mode` names -> TrainResult."""
    from robo_rl.config_schema import check_train_config

    check_train_config(cfg)
    if cfg.mode == "offline":
        from robo_rl.loops.offline import train_offline

        return train_offline(cfg, run_dir)
    from robo_rl.loops.online import train

    return train(cfg, run_dir)
