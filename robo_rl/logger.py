"""Run outputs: CSV (train.csv, eval.csv, plasticity.csv), TensorBoard scalars and a learning-curve PNG.

CSV rows are flushed at once so a killed run keeps its log; on resume, rows newer than the
checkpoint are dropped (the run repeats those steps) so each CSV stays one monotone curve.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Mapping


class CSVLog:
    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        self._fields: list[str] | None = None
        if resume_step is not None and path.exists():
            self._truncate_after(resume_step)
        elif path.exists():
            path.unlink()
        if path.exists():
            with path.open(newline="") as f:
                self._fields = next(csv.reader(f), None)

    def _truncate_after(self, step: int) -> None:
        rows = self._read_raw()
        self._fields = list(rows[0].keys()) if rows else []
        self._rewrite([r for r in rows if int(float(r["step"])) <= step])

    def write(self, row: Mapping[str, float]) -> None:
        if self._fields is None:
            self._fields = list(row.keys())
            with self.path.open("w", newline="") as f:
                csv.DictWriter(f, fieldnames=self._fields).writeheader()
        elif any(key not in self._fields for key in row):
            # New metrics appear once learning starts: widen the header (rare, so rewriting is fine).
            self._fields += [key for key in row if key not in self._fields]
            self._rewrite(self._read_raw())
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._fields).writerow(row)

    def _read_raw(self) -> list[dict[str, str]]:
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def read(self) -> list[dict[str, float]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


class RunLogger:
    """One object for everything a run writes about its progress."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.train_csv = CSVLog(self.run_dir / "train.csv", resume_step)
        self.eval_csv = CSVLog(self.run_dir / "eval.csv", resume_step)
        self.plasticity_csv = CSVLog(self.run_dir / "plasticity.csv", resume_step)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=resume_step)

    def log(self, kind: str, step: int, metrics: Mapping[str, float]) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        csvs = {"eval": self.eval_csv, "plasticity": self.plasticity_csv}
        csvs.get(kind, self.train_csv).write(row)
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(f"{kind}/{key}", float(value), step)
            self._tb.flush()

    def plot(self, title: str) -> Path:
        """Redraw learning_curve.png from eval.csv (atomically)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.eval_csv.read()
        path = self.run_dir / "learning_curve.png"
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        if rows:
            steps = [r["step"] for r in rows]
            mean = [r["return_mean"] for r in rows]
            std = [r.get("return_std", 0.0) for r in rows]
            ax.plot(steps, mean, marker="o", label="eval return (mean)")
            ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            alpha=0.25, label="+/- 1 std")
            handles, labels = ax.get_legend_handles_labels()
            success = [(r["step"], r["success_rate"]) for r in rows if "success_rate" in r]
            if success:  # tasks that report success: the rate on its own axis
                rate_ax = ax.twinx()
                rate_ax.plot(*zip(*success), color="tab:green", marker="s", label="eval success rate")
                rate_ax.set_ylim(-0.05, 1.05)
                rate_ax.set_ylabel("success rate")
                more_handles, more_labels = rate_ax.get_legend_handles_labels()
                handles, labels = handles + more_handles, labels + more_labels
            ax.legend(handles, labels, loc="lower right")
        ax.set_xlabel("agent steps")
        ax.set_ylabel("episode return")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        tmp = path.with_name(".learning_curve.tmp.png")
        fig.savefig(tmp)
        plt.close(fig)
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
