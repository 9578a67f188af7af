"""Scores of heareval runs -> one results table (CSV, Markdown, JSON) and a bar chart (PNG).

heareval writes ``test.predicted-scores.json`` into each embedding task directory:
``{"test": {"test_<metric>": x, ...}}`` for train/valid/test tasks and, for k-fold tasks, one
entry per test fold plus ``"aggregated_scores": {"test_<metric>_mean": x, "test_<metric>_std": s}``.
:func:`read_metric` reads either form. Rows are "long" (one per run, task and metric); the
Markdown table is "wide" (one column per run, the chance level, then the reference and each
run's difference). A score worse than the floor run's (the log-mel floor, see
:mod:`hear_suite.evaluation.driver`) on the same task and metric is marked ▼ in the table and
hatched in the chart. All files are written through a temporary name and a rename.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hear_suite.evaluation.config import LOWER_IS_BETTER
from hear_suite.tasks import write_atomic

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
    chance: Optional[float] = None       # audio-blind predictor (evaluation.chance)
    floor: Optional[float] = None        # the floor run's score on this task and metric
    below_floor: Optional[bool] = None   # worse than the floor; None: no comparison

    @property
    def diff(self) -> Optional[float]:
        if self.score is None or self.reference is None:
            return None
        return self.score - self.reference


def worse(metric: str, score: float, than: float) -> bool:
    """``score`` is strictly worse than ``than`` (higher for lower-is-better metrics)."""
    return score > than if metric in LOWER_IS_BETTER else score < than


def mark_floor(rows: Sequence[Row], floor_run: str) -> None:
    """Set ``floor`` and ``below_floor`` of every row from ``floor_run``'s row of the same task
    and metric. ``below_floor`` stays None for the floor's own rows and where either score is
    missing."""
    floors = {(r.task, r.metric): r.score for r in rows
              if r.run == floor_run and r.score is not None and math.isfinite(r.score)}
    for r in rows:
        r.floor = floors.get((r.task, r.metric))
        r.below_floor = None
        if r.run != floor_run and r.floor is not None and r.score is not None \
                and math.isfinite(r.score):
            r.below_floor = worse(r.metric, r.score, r.floor)


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
    w.writerow(["run", "task", "metric", "score", "std", "folds", "reference", "diff", "chance",
                "floor", "below_floor", "status", "detail"])
    for r in rows:
        below = "" if r.below_floor is None else str(r.below_floor).lower()
        w.writerow([r.run, r.task, r.metric, _num(r.score), _num(r.std), r.folds,
                    _num(r.reference), _num(r.diff), _num(r.chance), _num(r.floor), below,
                    r.status, r.detail])
    return buf.getvalue()


def to_markdown(rows: Sequence[Row], runs: Sequence[str], reference_name: str = "reference",
                floor: Optional[str] = None) -> str:
    """Wide table: task, metric, one column per run (mean ± std for k-fold), the chance level,
    the reference and, where there is one, each run's difference to it. Lower-is-better metrics
    are marked ↓; with a ``floor`` run, scores worse than it ▼ (from ``Row.below_floor``, see
    :func:`mark_floor`), explained under the table."""
    keys: List[Tuple[str, str]] = []
    by_key: Dict[Tuple[str, str, str], Row] = {}
    for r in rows:
        if (r.task, r.metric) not in keys:
            keys.append((r.task, r.metric))
        by_key[(r.task, r.metric, r.run)] = r
    has_ref = any(r.reference is not None for r in rows)
    has_chance = any(r.chance is not None for r in rows)
    header = ["task", "metric", *runs] + (["chance"] if has_chance else [])
    if has_ref:
        header += [reference_name] + [f"Δ {run}" for run in runs]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, metric in keys:
        cells = [task, metric + (" ↓" if metric in LOWER_IS_BETTER else "")]
        ref = chance = None
        for run in runs:
            r = by_key.get((task, metric, run))
            if r is None:
                cells.append("")
            elif r.status != "ok":
                cells.append(r.status)
            else:
                cells.append(_fmt(r.score) + (f" ± {r.std:.3f}" if r.std is not None
                                              and math.isfinite(r.std) else "")
                             + (" ▼" if floor and r.below_floor else ""))
            if r is not None and r.reference is not None:
                ref = r.reference
            if r is not None and r.chance is not None:
                chance = r.chance
        if has_chance:
            cells.append(_fmt(chance))
        if has_ref:
            cells.append(_fmt(ref))
            for run in runs:
                r = by_key.get((task, metric, run))
                cells.append(_fmt(r.diff, signed=True) if r is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    legend = []
    if floor:
        legend.append(f"▼: below the floor, i.e. worse than {floor} (log-mel frames, their "
                      f"mean and std for scene tasks, through the same probes; for ↓ metrics, "
                      f"higher).")
    if has_chance:
        legend.append("chance: an audio-blind predictor (majority class; label prevalence for "
                      "mAP; 0.5 ROC AUC; no events detected).")
    return "\n".join(lines) + "\n" + "".join(f"\n{line}\n" for line in legend)


def run_colours(n: int) -> List[Any]:
    """One bar colour per run: matplotlib's 10-colour cycle for up to 10 runs, tab20's 20
    beyond (repeating after 20), so that no two of up to 20 runs share a colour."""
    import matplotlib

    if n <= 10:
        return [f"C{j}" for j in range(n)]
    palette = list(matplotlib.colormaps["tab20"].colors)
    return [palette[j % len(palette)] for j in range(n)]


def bar_chart_png(rows: Sequence[Row], runs: Sequence[str], title: str,
                  reference_name: str = "reference", floor: Optional[str] = None) -> bytes:
    """Grouped horizontal bars of each task's primary metric (the first listed), one bar per
    run, with per-task ticks: the reference (black), the ``floor`` run's score (dashed) and the
    chance level (dotted). Bars worse than the floor are hatched. Returns PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    primary: Dict[str, str] = {}
    for r in rows:
        primary.setdefault(r.task, r.metric)
    tasks = list(primary)
    height = 0.8 / max(1, len(runs))
    fig, ax = plt.subplots(figsize=(10.5, 0.9 + 0.45 * len(tasks) * max(1, len(runs)) ** 0.5))
    by_key = {(r.task, r.metric, r.run): r for r in rows}
    colours = run_colours(len(runs))
    # legend entries of the runs are plain patches: a run's first bar may be hatched
    handles = [Patch(facecolor=colours[j], label=run) for j, run in enumerate(runs)]
    any_below = False
    for j, run in enumerate(runs):
        ys, xs, below = [], [], []
        for i, task in enumerate(tasks):
            r = by_key.get((task, primary[task], run))
            if r is not None and r.score is not None and math.isfinite(r.score):
                ys.append(i - 0.4 + height * (j + 0.5))
                xs.append(r.score)
                below.append(bool(floor and r.below_floor))
        bars = ax.barh(ys, xs, height=height * 0.9, color=colours[j])
        for bar, hatched in zip(bars, below):
            if hatched:
                bar.set_hatch("////")
                any_below = True
    ticks = [("reference", reference_name, dict(color="black", lw=2)),
             ("chance", "chance", dict(color="tab:red", lw=1.5, ls=":"))]
    if floor:
        ticks.insert(1, ("floor", "floor", dict(color="dimgray", lw=1.5, ls="--")))
    for attr, label, style in ticks:
        for i, task in enumerate(tasks):
            values = [getattr(r, attr) for r in rows if r.task == task
                      and r.metric == primary[task] and getattr(r, attr) is not None]
            if values:
                ax.plot([values[0], values[0]], [i - 0.45, i + 0.45], label=label, **style)
                label = None
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels([f"{t}\n{primary[t]}" for t in tasks], fontsize=7)
    ax.invert_yaxis()
    shown = [x for r in rows if r.metric == primary[r.task] for x in (r.score, r.chance)
             if x is not None and math.isfinite(x)]
    ax.set_xlim(0, 1.02 * max([1.0] + shown))  # room for a tick at 1 (the chance error rate)
    ax.set_xlabel("score (primary metric)")
    ax.set_title(title)
    handles = ax.get_legend_handles_labels()[0] + handles
    if any_below:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="////",
                             label="below the floor"))
    # beside the axes, not on them: with many runs the legend would hide the last task's bars
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_results(out_dir: Path, rows: Sequence[Row], runs: Sequence[str], *, title: str,
                  reference_name: str = "reference", floor: Optional[str] = None,
                  extra: Optional[Dict[str, Any]] = None, png: bool = True) -> Dict[str, Path]:
    """Write ``results.csv``, ``results.md``, ``results.json`` (+ ``results.png``) atomically.
    ``floor``: the floor run's name, for the ▼ marks and hatches (the rows' ``below_floor``, see
    :func:`mark_floor`) and their legends."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f"results.{k}" for k in ("csv", "md", "json", "png")}
    write_atomic(paths["csv"], to_csv(rows))
    md = f"# {title}\n\n" + to_markdown(rows, runs, reference_name, floor)
    write_atomic(paths["md"], md)
    payload = {"title": title, "runs": list(runs), "reference_name": reference_name,
               "floor": floor, "rows": [dict(asdict(r), diff=r.diff) for r in rows],
               **(extra or {})}
    write_atomic(paths["json"], json.dumps(payload, indent=1))
    if png and rows:
        write_atomic(paths["png"], bar_chart_png(rows, runs, title, reference_name, floor))
    else:
        paths.pop("png")
    return paths
