"""Evaluation configs (``eval_configs/*.yaml``): which tasks, which metrics, which probe grid,
and reference scores to compare with.

.. code-block:: yaml

    name: hear2021
    description: free text
    grid: default          # heareval's default|fast|faster, hear_suite's ci|demo, or a key of grids
    grid_points: 8         # heareval --grid-points
    grids:                 # optional named grids: overrides of heareval's default PARAM_GRID,
      small: {hidden_layers: [1], lr: [1.0e-3], max_epochs: [20]}   # flat or per embedding type:
      small2: {scene: {max_epochs: [100]}, event: {max_epochs: [20]}}
    reference_name: kwmlp (paper)   # column title of the reference scores
    tasks:
      - dir: speech_commands-v0.0.2-full   # task directory name inside --tasks-dir
        metrics: [top1_acc]                # reported metrics, primary first (default: the task's)
        reference: {top1_acc: 0.978}       # optional
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

# heareval grid parameters that are numbers. YAML 1.1 (PyYAML) reads `1e-3` (no dot) as a
# string, which heareval would pass on to the optimizer: such strings are read as numbers here.
NUMERIC_GRID_KEYS = {"lr": float, "dropout": float, "hidden_layers": int, "hidden_dim": int,
                     "patience": int, "max_epochs": int, "check_val_every_n_epoch": int,
                     "batch_size": int}
KNOWN_METRICS = ("top1_acc", "pitch_acc", "chroma_acc", "mAP", "d_prime", "aucroc",
                 "event_onset_200ms_fms", "event_onset_50ms_fms",
                 "event_onset_offset_50ms_20perc_fms", "segment_1s_er")
LOWER_IS_BETTER = ("segment_1s_er",)


@dataclass(frozen=True)
class TaskEntry:
    dir: str
    metrics: List[str] = field(default_factory=list)
    reference: Dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalConfig:
    name: str
    tasks: List[TaskEntry]
    grid: str = "default"
    grid_points: int = 8
    grids: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    reference_name: str = "reference"
    description: str = ""
    path: Optional[Path] = None

    def task(self, dir_name: str) -> TaskEntry:
        for t in self.tasks:
            if t.dir == dir_name:
                return t
        raise KeyError(dir_name)


def _grid_numbers(path: Path, name: str, spec: Any) -> Dict[str, Any]:
    """A grid with its numeric parameters as numbers: flat, or per ``scene``/``event``."""
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: grid {name!r} must be a mapping of parameter: [values]")
    if spec and set(spec) <= {"scene", "event"}:
        return {k: _grid_numbers(path, f"{name}.{k}", v) for k, v in spec.items()}
    out: Dict[str, Any] = {}
    for key, values in spec.items():
        kind = NUMERIC_GRID_KEYS.get(key)
        values = values if isinstance(values, list) else [values]
        if kind is not None:
            try:
                values = [kind(float(v)) if isinstance(v, str) else v for v in values]
            except ValueError:
                raise ValueError(f"{path}: grid {name!r}: {key} must be numbers, got {values}") from None
        out[key] = values
    return out


def load_config(path: Union[str, Path]) -> EvalConfig:
    """Read and check an evaluation config; errors name the file and the offending entry."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list) or not raw["tasks"]:
        raise ValueError(f"{path}: needs a non-empty `tasks:` list")
    tasks = []
    for i, t in enumerate(raw["tasks"]):
        if isinstance(t, str):
            t = {"dir": t}
        if not isinstance(t, dict) or "dir" not in t:
            raise ValueError(f"{path}: tasks[{i}] needs a `dir:`")
        metrics = list(t.get("metrics") or [])
        reference = {str(k): float(v) for k, v in (t.get("reference") or {}).items()}
        for m in metrics + list(reference):
            if m not in KNOWN_METRICS:
                raise ValueError(f"{path}: task {t['dir']}: unknown metric {m!r}; heareval has "
                                 f"{list(KNOWN_METRICS)}")
        tasks.append(TaskEntry(str(t["dir"]), metrics, reference))
    dirs = [t.dir for t in tasks]
    if len(set(dirs)) != len(dirs):
        raise ValueError(f"{path}: duplicate task dirs")
    grids = {str(name): _grid_numbers(path, str(name), spec)
             for name, spec in (raw.get("grids") or {}).items()}
    grid = str(raw.get("grid", "default"))
    return EvalConfig(name=str(raw.get("name", path.stem)), tasks=tasks, grid=grid,
                      grid_points=int(raw.get("grid_points", 8)), grids=dict(grids),
                      reference_name=str(raw.get("reference_name", "reference")),
                      description=str(raw.get("description", "")), path=path)
