"""Scores of heareval runs -> one results table (CSV, Markdown, JSON) and a bar chart (PNG).

heareval writes ``test.predicted-scores.json`` into each embedding task directory:
``{"test": {"test_<metric>": x, ...}}`` for train/valid/test tasks and, for k-fold tasks, one
entry per test fold plus ``"aggregated_scores": {"test_<metric>_mean": x, "test_<metric>_std": s}``.
:func:`read_metric` reads either form. Rows are "long" (one per run, task and metric); the
Markdown table is "wide" (one column per run, then the reference and each run's difference).
All files are written through a temporary name and a rename.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hear_suite.evaluation.config import LOWER_IS_BETTER

SCORES_FILE = "test.predicted-scores.json"
# Row statuses: ok (a score), missing (task not in the tasks dir), failed (a step raised),
# pending (not run yet: an interrupted run), no_metric (the scores file lacks this metric).
STATUSES = ("ok", "missing", "failed", "pending", "no_metric")


@dataclass
class Row:
    run: str
    task: str
    metric: str
    score: Optional[float] = None
    std: Optional[float] = None
    folds: int = 1
    reference: Optional[float] = None
    status: str = "ok"
    detail: str = ""

    @property
    def diff(self) -> Optional[float]:
        if self.score is None or self.reference is None:
            return None
        return self.score - self.reference


def read_metric(scores: Dict[str, Any], metric: str) -> Optional[Tuple[float, Optional[float], int]]:
    """``(score, std or None, number of test splits)`` of ``metric`` in a heareval scores dict."""
    if "aggregated_scores" in scores:
        agg = scores["aggregated_scores"]
        if f"test_{metric}_mean" not in agg:
            return None
        folds = sum(1 for k, v in scores.items() if isinstance(v, dict) and k != "aggregated_scores"
                    and f"test_{metric}" in v)
        return float(agg[f"test_{metric}_mean"]), float(agg.get(f"test_{metric}_std", math.nan)), folds
    test = scores.get("test", {})
    if f"test_{metric}" not in test:
        return None
    return float(test[f"test_{metric}"]), None, 1


def read_scores(embedding_task_dir: Path) -> Optional[Dict[str, Any]]:
    path = Path(embedding_task_dir) / SCORES_FILE
    return json.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------

def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _fmt(x: Optional[float], signed: bool = False) -> str:
    if x is None:
        return ""
    if not math.isfinite(x):
        return str(x)
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _num(x: Optional[float]) -> str:
    return "" if x is None else f"{x:.6g}"


def to_csv(rows: Sequence[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run", "task", "metric", "score", "std", "folds", "reference", "diff", "status",
                "detail"])
    for r in rows:
        w.writerow([r.run, r.task, r.metric, _num(r.score), _num(r.std), r.folds,
                    _num(r.reference), _num(r.diff), r.status, r.detail])
    return buf.getvalue()


def to_markdown(rows: Sequence[Row], runs: Sequence[str], reference_name: str = "reference") -> str:
    """Wide table: task, metric, one column per run (mean ± std for k-fold), the reference
    and, where there is one, each run's difference to it. Lower-is-better metrics are marked ↓."""
    keys: List[Tuple[str, str]] = []
    by_key: Dict[Tuple[str, str, str], Row] = {}
    for r in rows:
        if (r.task, r.metric) not in keys:
            keys.append((r.task, r.metric))
        by_key[(r.task, r.metric, r.run)] = r
    has_ref = any(r.reference is not None for r in rows)
    header = ["task", "metric", *runs]
    if has_ref:
        header += [reference_name] + [f"Δ {run}" for run in runs]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, metric in keys:
        cells = [task, metric + (" ↓" if metric in LOWER_IS_BETTER else "")]
        ref = None
        for run in runs:
            r = by_key.get((task, metric, run))
            if r is None:
                cells.append("")
            elif r.status != "ok":
                cells.append(r.status)
            else:
                cells.append(_fmt(r.score) + (f" ± {r.std:.3f}" if r.std is not None
                                              and math.isfinite(r.std) else ""))
            if r is not None and r.reference is not None:
                ref = r.reference
        if has_ref:
            cells.append(_fmt(ref))
            for run in runs:
                r = by_key.get((task, metric, run))
                cells.append(_fmt(r.diff, signed=True) if r is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart_png(rows: Sequence[Row], runs: Sequence[str], title: str,
                  reference_name: str = "reference") -> bytes:
    """Grouped horizontal bars of each task's primary metric (the first listed), one bar per
    run, with the reference as a black tick. Returns PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    primary: Dict[str, str] = {}
    for r in rows:
        primary.setdefault(r.task, r.metric)
    tasks = list(primary)
    height = 0.8 / max(1, len(runs))
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.45 * len(tasks) * max(1, len(runs)) ** 0.5))
    by_key = {(r.task, r.metric, r.run): r for r in rows}
    for j, run in enumerate(runs):
        ys, xs = [], []
        for i, task in enumerate(tasks):
            r = by_key.get((task, primary[task], run))
            if r is not None and r.score is not None and math.isfinite(r.score):
                ys.append(i - 0.4 + height * (j + 0.5))
                xs.append(r.score)
        ax.barh(ys, xs, height=height * 0.9, label=run)
    ref_label = reference_name
    for i, task in enumerate(tasks):
        refs = [r.reference for r in rows if r.task == task and r.metric == primary[task]
                and r.reference is not None]
        if refs:
            ax.plot([refs[0], refs[0]], [i - 0.45, i + 0.45], color="black", lw=2, label=ref_label)
            ref_label = None
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels([f"{t}\n{primary[t]}" for t in tasks], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max([1.0] + [r.score for r in rows if r.score is not None
                                and math.isfinite(r.score) and r.metric == primary[r.task]]))
    ax.set_xlabel("score (primary metric)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_results(out_dir: Path, rows: Sequence[Row], runs: Sequence[str], *, title: str,
                  reference_name: str = "reference", extra: Optional[Dict[str, Any]] = None,
                  png: bool = True) -> Dict[str, Path]:
    """Write ``results.csv``, ``results.md``, ``results.json`` (+ ``results.png``) atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f"results.{k}" for k in ("csv", "md", "json", "png")}
    _atomic_write(paths["csv"], to_csv(rows).encode())
    md = f"# {title}\n\n" + to_markdown(rows, runs, reference_name)
    _atomic_write(paths["md"], md.encode())
    payload = {"title": title, "runs": list(runs), "reference_name": reference_name,
               "rows": [dict(asdict(r), diff=r.diff) for r in rows], **(extra or {})}
    _atomic_write(paths["json"], json.dumps(payload, indent=1).encode())
    if png and rows:
        _atomic_write(paths["png"], bar_chart_png(rows, runs, title, reference_name))
    else:
        paths.pop("png")
    return paths
