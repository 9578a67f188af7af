"""What a run reports: :func:`log` and :func:`progress` print on rank 0 only (through tqdm, so
open bars stay intact), :class:`MetricsLog` keeps ``metrics.csv`` (one row per epoch, rewritten
atomically, without duplicates on resume) and :func:`plot_curves` draws ``curves.png``."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Sequence, TypeVar, Union

from tqdm import tqdm

from hear_suite.training.distributed import is_main_process

T = TypeVar("T")
PathLike = Union[str, Path]


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    """A tqdm bar on rank 0; the bare iterable elsewhere."""
    return tqdm(iterable, dynamic_ncols=True, **kwargs) if is_main_process() else iterable



def log(*parts: Any) -> None:
    """``print`` on rank 0 only (through tqdm, so open bars are not broken)."""
    if is_main_process():
        tqdm.write(" ".join(str(p) for p in parts))



class MetricsLog:
    """Per-epoch metrics in a CSV file, one row per epoch (column ``epoch``, 1-based).

    The whole (small) file is rewritten atomically on every change; a row for an epoch that is
    already present replaces it, so resumed runs never duplicate rows.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self.rows: List[Dict[str, float]] = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                for row in csv.DictReader(f):
                    self.rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})

    def truncate(self, last_epoch: int) -> None:
        """Drop rows after ``last_epoch`` (epochs whose training state was never saved)."""
        kept = [r for r in self.rows if r["epoch"] <= last_epoch]
        if len(kept) != len(self.rows):
            self.rows = kept
            self._write()

    def append(self, row: Mapping[str, float]) -> None:
        if "epoch" not in row:
            raise ValueError("a metrics row needs an 'epoch'")
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [dict(row)]
        self.rows.sort(key=lambda r: r["epoch"])
        self._write()

    def _write(self) -> None:
        columns: List[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: (int(v) if k in ("epoch", "step") else f"{v:.6g}")
                                 for k, v in row.items()})
        os.replace(tmp, self.path)



def plot_curves(rows: Sequence[Mapping[str, float]], path: PathLike,
                panels: Mapping[str, Sequence[str]]) -> None:
    """One PNG with a panel per entry of ``panels`` (title -> metric columns) against epoch,
    e.g. ``{"loss": ["train_loss", "valid_loss"], "lr": ["lr"]}``. Missing columns are skipped.
    Uses the Agg canvas directly: no pyplot, no global backend change."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(panels), 3.4), constrained_layout=True)
    FigureCanvasAgg(fig)
    epochs = [r["epoch"] for r in rows]
    for i, (title, columns) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for col in columns:
            pts = [(e, r[col]) for e, r in zip(epochs, rows) if col in r]
            if pts:
                ax.plot(*zip(*pts), marker="." if len(pts) < 30 else None, label=col)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(columns) > 1:
            ax.legend(fontsize="small")
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)

