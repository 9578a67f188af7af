"""``hear-suite eval``: evaluate HEAR modules with heareval over the tasks of a config.

    hear-suite eval --module hear_suite.kwmlp [--model PATH] [--model-options JSON] [--label NAME]
                    [--module OTHER ...] --config eval_configs/generated.yaml --tasks-dir TASKS
                    [--out DIR] [--grid NAME] [--grid-points N] [--only TASK,...] [--no-floor]
                    [--cpu] [-v]

``--model``, ``--model-options`` and ``--label`` apply to the ``--module`` before them; a module
is any importable HEAR plugin (``load_model``, ``get_scene_embeddings``,
``get_timestamp_embeddings``). The log-mel floor (``hear_suite.logmel``, labelled
``logmel (floor)``) is evaluated after them unless ``--no-floor`` is given or a ``--module
hear_suite.logmel`` is (that run is then the floor): scores worse than the floor are marked
(:func:`hear_suite.evaluation.results.mark_floor`), and every row carries the task's chance
level (:mod:`hear_suite.evaluation.chance`). For each module, each task of the config found in
``--tasks-dir`` goes through heareval's embedding step, then its prediction step (downstream
probes, grid search), in subprocesses of :mod:`hear_suite.evaluation.heareval_compat`. A task
missing from the tasks dir is reported and skipped.

Output (``--out``, default ``runs/eval/<config name>``)::

    embeddings/<run id>/<module+options>/<task>/   heareval's files, scores in test.predicted-scores.json
    logs/<run id>.embed.log, logs/<run id>.predict.log
    results.csv  results.md  results.json  results.png

Cost: ``results.json`` holds, per run, task and step, heareval's own seconds (``seconds``) and
hear_suite's measures (``cost``: wall and CPU seconds of the step on the task, the step
process's resident set when the task began and its peak on the task, from
:mod:`~hear_suite.evaluation.heareval_compat`; kept in ``hear_suite.cost.json`` in the task's
embedding directory, so a resumed run still reports them).

Resumable: heareval's done-markers (``.done.embeddings``, ``prediction-done.json``) make a rerun
skip finished steps; a failed task is retried on the next run and does not stop the others.
Embeddings whose task changed since (different ``task_metadata.json``) or that were made with
another weights file (``<run id>/weights.json``: a run without ``--model`` follows the shipped
default) and predictions made with another grid are redone. The exit status is 1 when a step
failed, 0 otherwise (missing tasks included).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hear_suite.evaluation.chance import task_chance
from hear_suite.evaluation.config import KNOWN_METRICS, EvalConfig, load_config
from hear_suite.evaluation.heareval_compat import EXTRA_GRIDS, HEAREVAL_GRIDS, MARK
from hear_suite.evaluation.runs import (Run, ModuleAction, RunOptionAction, parse_runs,
                                        with_floor)
from hear_suite.evaluation.results import (Row, mark_floor, read_metric, read_scores,
                                           write_results)
from hear_suite.tasks import write_atomic

INSTALL_HINT = ("pip install -r requirements-eval.txt && "
                "pip install --no-deps heareval==2021.1.3 hearvalidator==2021.0.2 "
                "(or bash scripts/setup.sh)")
# What heareval's two steps import (its declared dependencies are unusable, see the README).
STACK = ("heareval", "tensorflow", "pytorch_lightning", "pkg_resources", "torchinfo", "sed_eval",
         "dcase_util", "intervaltree", "more_itertools", "pandas", "slugify", "click", "sklearn")
PREDICT_MARKER = "hear_suite.predict.json"  # the grid a task's predictions were made with
WEIGHTS_MARKER = "weights.json"  # name and hash of the weights file a run's embeddings came from
COST_FILE = "hear_suite.cost.json"  # {step: {seconds, cpu_seconds, memory}} in an embedding dir


# ---------------------------------------------------------------------------------------------
# chance levels
# ---------------------------------------------------------------------------------------------

def chance_levels(entries, tasks_dir: Path) -> Dict[str, Dict[str, Optional[float]]]:
    """``{task dir: {metric: chance}}`` of the tasks present, for every metric heareval has; a
    task whose labels cannot be read gets no chance level (heareval will report what is wrong
    with it)."""
    result: Dict[str, Dict[str, Optional[float]]] = {}
    for t in entries:
        if not (tasks_dir / t.dir / "task_metadata.json").is_file():
            continue
        try:
            result[t.dir] = task_chance(tasks_dir / t.dir, KNOWN_METRICS)
        except (OSError, ValueError, KeyError) as e:
            print(f"  {t.dir}: no chance level ({type(e).__name__}: {e})", flush=True)
    return result


# ---------------------------------------------------------------------------------------------
# subprocesses
# ---------------------------------------------------------------------------------------------

@dataclass
class StepResult:
    ok: bool
    seconds: float = 0.0
    error: str = ""
    cost: Dict[str, Any] = field(default_factory=dict)  # cpu_seconds, rss_start_mb, peak_rss_mb


def _child_env(cpu: bool) -> Dict[str, str]:
    """The environment of heareval's steps: this process's import path (so the same modules,
    including ones importable only from the current directory, can be loaded) and quiet TF."""
    env = dict(os.environ)
    defaults = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
    extra = [os.getcwd()] + [p for p in sys.path if p and os.path.isdir(p)
                             and not any(os.path.realpath(p).startswith(d) for d in defaults)]
    extra += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(os.path.abspath(p) for p in extra))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def _launch(step: str, args: List[str], items: List[str], *, log_path: Path, env: Dict[str, str],
            cwd: Path, verbose: bool, prefix: str) -> Dict[str, StepResult]:
    """Run the launcher for ``items`` (task names or embedding dirs); if it dies (a crash, not
    an exception, which the launcher reports itself), the task it was on is failed and the
    launcher restarts for the rest."""
    results: Dict[str, StepResult] = {}
    remaining = list(items)
    while remaining:
        cmd = [sys.executable, "-m", "hear_suite.evaluation.heareval_compat", step, *args, *remaining]
        started: Optional[str] = None
        n_started = 0
        tail: List[str] = []
        with open(log_path, "a") as log:
            log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, errors="replace", env=env, cwd=str(cwd))
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                tail = (tail + [line.rstrip()])[-30:]
                at = line.find(MARK)
                if at < 0:
                    if verbose:
                        sys.stdout.write(line)
                    continue
                event = json.loads(line[at + len(MARK):])
                item, name = event["task"], Path(event["task"]).name
                if event["event"] == "note":
                    print(f"{prefix} {step:7s} {name}: {event.get('message', '')}", flush=True)
                elif event["event"] == "start":
                    started, n_started = item, n_started + 1
                    print(f"{prefix} {step:7s} {name} ({items.index(item) + 1}/{len(items)}) ...",
                          flush=True)
                else:
                    ok = event["event"] == "done"
                    cost = {k: event.get(k) for k in ("cpu_seconds", "rss_start_mb", "peak_rss_mb")}
                    results[item] = StepResult(ok, event.get("seconds", 0.0), event.get("error", ""),
                                               cost)
                    started = None
                    peak = f", peak {event['peak_rss_mb']:.0f} MB" if event.get("peak_rss_mb") else ""
                    print(f"{prefix} {step:7s} {name}: "
                          + (f"done in {event['seconds']:.1f} s{peak}" if ok else
                             f"FAILED: {event.get('error', '')[:300]} (log: {log_path})"), flush=True)
            rc = proc.wait()
        if started is not None:
            results[started] = StepResult(False, 0.0, f"the {step} process died (exit status {rc})")
            print(f"{prefix} {step:7s} {Path(started).name}: FAILED: process died ({rc}); "
                  f"log: {log_path}", flush=True)
        if n_started == 0:  # could not even start (import error, bad arguments): fail them all
            reason = f"{step} launcher exit status {rc}: " + " | ".join(tail[-5:])
            for item in remaining:
                results[item] = StepResult(False, 0.0, reason[-1000:])
            print(f"{prefix} {step} could not start: {reason[-500:]}", flush=True)
        remaining = [t for t in remaining if t not in results]
    return results


# ---------------------------------------------------------------------------------------------
# the evaluation
# ---------------------------------------------------------------------------------------------

def _resolve_grid(config: EvalConfig, grid: Optional[str]) -> Dict[str, Any]:
    name = grid or config.grid
    if name in config.grids:  # overrides of heareval's default grid
        return {"name": name, "args": ["--grid", "default", "--grid-json",
                                       json.dumps(config.grids[name])],
                "params": config.grids[name]}
    if name in EXTRA_GRIDS:
        return {"name": name, "args": ["--grid", name], "params": EXTRA_GRIDS[name]}
    if name in HEAREVAL_GRIDS:
        return {"name": name, "args": ["--grid", name], "params": name}
    raise ValueError(f"unknown grid {name!r}: heareval has {list(HEAREVAL_GRIDS)}, hear_suite adds "
                     f"{sorted(EXTRA_GRIDS)}, the config defines {sorted(config.grids)}")


def _same_file(a: Path, b: Path) -> bool:
    return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()


def _task_files(task_src: Path) -> List[str]:
    """The files heareval copies from a task into its embedding directory."""
    meta = json.loads((task_src / "task_metadata.json").read_text())
    splits = [f"{s}.json" for s in meta.get("splits", [])]
    return ["task_metadata.json", "labelvocabulary.csv"] + splits


def _invalidate_stale(task_src: Path, emb_dir: Path, grid_key: Dict[str, Any], prefix: str) -> None:
    """Forget embeddings of a task that changed (its metadata, vocabulary or any split file
    differs from heareval's copies), and predictions made with another grid."""
    if (emb_dir / ".done.embeddings").exists() and not all(
            _same_file(task_src / name, emb_dir / name) for name in _task_files(task_src)):
        print(f"{prefix} {emb_dir.name}: the task changed since it was embedded; recomputing")
        shutil.rmtree(emb_dir)
        return
    done = emb_dir / "prediction-done.json"
    marker = emb_dir / PREDICT_MARKER
    if done.exists():
        recorded = json.loads(marker.read_text()) if marker.is_file() else None
        if recorded != grid_key:
            print(f"{prefix} {emb_dir.name}: predictions were made with another grid; redoing")
            for name in ("prediction-done.json", "test.predicted-scores.json", PREDICT_MARKER):
                (emb_dir / name).unlink(missing_ok=True)
            cost = emb_dir / COST_FILE  # the old probes' cost goes with them
            if cost.is_file():
                kept = {k: v for k, v in json.loads(cost.read_text()).items() if k != "predict"}
                write_atomic(cost, json.dumps(kept, indent=1))


def _invalidate_other_weights(run: Run, emb_root: Path, prefix: str) -> None:
    """Forget a run's embeddings made with another weights file than the one it uses now, which
    for a run without ``--model`` changes when the shipped default does. The file's name and
    hash are kept in ``<run id>/weights.json``; embeddings from before that record existed are
    taken to come from the current file."""
    key = run.weights_key()
    if key is None:
        return
    marker = emb_root / WEIGHTS_MARKER
    made_with = json.loads(marker.read_text()) if marker.is_file() else key
    if made_with != key:
        print(f"{prefix} embeddings were made with {made_with['file']} (sha256 "
              f"{made_with['sha256']}), not {key['file']} (sha256 {key['sha256']}); recomputing",
              flush=True)
        shutil.rmtree(emb_root)
    emb_root.mkdir(parents=True, exist_ok=True)
    write_atomic(marker, json.dumps(key))


def evaluate(config: EvalConfig, runs: Sequence[Run], tasks_dir: Path, out: Path, *,
             grid: Optional[str] = None, grid_points: Optional[int] = None,
             only: Optional[Sequence[str]] = None, cpu: bool = False, verbose: bool = False,
             png: bool = True, floor: bool = True) -> Dict[str, Any]:
    """Embed, predict and tabulate; ``floor``: add the log-mel floor (:func:`with_floor`).
    Returns ``{"rows", "paths", "failed", "missing"}``."""
    tasks_dir, out = Path(tasks_dir).resolve(), Path(out).resolve()
    if not runs:
        raise ValueError("no --module given")
    runs, floor_name = with_floor(runs, floor)
    if not tasks_dir.is_dir():
        raise FileNotFoundError(f"--tasks-dir {tasks_dir} is not a directory")
    entries = config.tasks
    if only:
        unknown = set(only) - {t.dir for t in entries}
        if unknown:
            raise ValueError(f"--only: not in config {config.name}: {sorted(unknown)}")
        entries = [t for t in entries if t.dir in only]
    present = [t for t in entries if (tasks_dir / t.dir / "task_metadata.json").is_file()]
    missing = [t.dir for t in entries if t not in present]
    grid_spec = _resolve_grid(config, grid)
    points = int(grid_points or config.grid_points)
    grid_key = {"grid": grid_spec["name"], "params": grid_spec["params"], "grid_points": points}
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = _child_env(cpu)

    print(f"hear-suite eval: config {config.name} ({len(entries)} tasks, {len(present)} in "
          f"{tasks_dir}); grid {grid_spec['name']} x {points} points; "
          f"{len(runs)} module run(s)" + (f", floor: {floor_name}" if floor_name else "")
          + f"; output {out}", flush=True)
    for m in missing:
        print(f"  missing: {m} (not in {tasks_dir}); skipped", flush=True)
    chance = chance_levels(present, tasks_dir)

    outcome: Dict[str, Dict[str, Dict[str, StepResult]]] = {}
    for k, run in enumerate(runs):
        prefix = f"[{run.name}]" if len(runs) == 1 else f"[{k + 1}/{len(runs)} {run.name}]"
        emb_root = out / "embeddings" / run.run_id
        _invalidate_other_weights(run, emb_root, prefix)
        emb_dirs = {t.dir: _emb_dir(out, run, t.dir) for t in present}
        for t in present:
            _invalidate_stale(tasks_dir / t.dir, emb_dirs[t.dir], grid_key, prefix)
        outcome[run.name] = {"embed": {}, "predict": {}}

        to_embed = [t.dir for t in present if not (emb_dirs[t.dir] / ".done.embeddings").exists()]
        for t in present:
            if t.dir not in to_embed:
                print(f"{prefix} embed   {t.dir}: done before, kept", flush=True)
        if to_embed:
            args = [run.module, "--tasks-dir", str(tasks_dir), "--embeddings-dir", str(emb_root),
                    "--model-options", json.dumps(run.options)]
            if run.model:
                args += ["--model", run.model]
            outcome[run.name]["embed"] = _launch(
                "embed", args, to_embed, log_path=out / "logs" / f"{run.run_id}.embed.log",
                env=env, cwd=out, verbose=verbose, prefix=prefix)
            for task, r in outcome[run.name]["embed"].items():
                if r.ok:
                    record_cost(emb_dirs[task], "embed", r)

        embedded = [t.dir for t in present if (emb_dirs[t.dir] / ".done.embeddings").exists()]
        to_predict = [str(emb_dirs[d]) for d in embedded
                      if not (emb_dirs[d] / "prediction-done.json").exists()]
        for d in embedded:
            if str(emb_dirs[d]) not in to_predict:
                print(f"{prefix} predict {d}: done before, kept", flush=True)
        if to_predict:
            args = [*grid_spec["args"], "--grid-points", str(points)]
            res = _launch("predict", args, to_predict,
                          log_path=out / "logs" / f"{run.run_id}.predict.log", env=env, cwd=out,
                          verbose=verbose, prefix=prefix)
            for item, r in res.items():
                if r.ok:
                    (Path(item) / PREDICT_MARKER).write_text(json.dumps(grid_key))
                    record_cost(Path(item), "predict", r)
            outcome[run.name]["predict"] = {Path(k).name: v for k, v in res.items()}
        done = [r.name for r in runs[:k + 1]]
        rows = collect_rows(config, entries, runs[:k + 1], tasks_dir, out, outcome, chance)
        floor_done = floor_name if floor_name in done else None
        if floor_done:
            mark_floor(rows, floor_done)
        paths = write_results(out, rows, done, title=f"hear-suite eval: {config.name}",
                              reference_name=config.reference_name, floor=floor_done, png=png,
                              extra={"seconds": timings(out, runs[:k + 1], entries),
                                     "cost": step_costs(out, runs[:k + 1], entries),
                                     "grid": grid_key,
                                     "tasks_dir": str(tasks_dir),
                                     "runs": [vars(r) for r in runs[:k + 1]]})
    failed = [(run, step, task, r.error) for run, steps in outcome.items()
              for step, res in steps.items() for task, r in res.items() if not r.ok]
    return {"rows": rows, "paths": paths, "failed": failed, "missing": missing}


def _emb_dir(out: Path, run: Run, task_dir: str) -> Path:
    return out / "embeddings" / run.run_id / run.heareval_dir_name() / task_dir


def timings(out: Path, runs: Sequence[Run], entries) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Seconds per run, task and step, from heareval's own records on disk."""
    result: Dict[str, Dict[str, Dict[str, float]]] = {}
    for run in runs:
        for t in entries:
            d = _emb_dir(out, run, t.dir)
            for step, name, key in (("embed", "profile.embeddings.json", "time_elapsed"),
                                    ("predict", "prediction-done.json", "time")):
                if (d / name).is_file():
                    seconds = json.loads((d / name).read_text()).get(key)
                    if seconds is not None:
                        result.setdefault(run.name, {}).setdefault(t.dir, {})[step] = round(seconds, 2)
    return result


def record_cost(emb_dir: Path, step: str, result: StepResult) -> None:
    """Keep a step's wall time and peak memory beside heareval's files (:data:`COST_FILE`)."""
    path = emb_dir / COST_FILE
    cost = json.loads(path.read_text()) if path.is_file() else {}
    cost[step] = {"seconds": result.seconds, **result.cost}
    write_atomic(path, json.dumps(cost, indent=1))


def step_costs(out: Path, runs: Sequence[Run], entries) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Per run, task and step, from :data:`COST_FILE`: ``seconds`` (wall, the whole step),
    ``cpu_seconds``, ``rss_start_mb`` and ``peak_rss_mb`` of the step's process on that task."""
    result: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for run in runs:
        for t in entries:
            path = _emb_dir(out, run, t.dir) / COST_FILE
            if path.is_file():
                result.setdefault(run.name, {})[t.dir] = json.loads(path.read_text())
    return result


def collect_rows(config: EvalConfig, entries, runs: Sequence[Run], tasks_dir: Path, out: Path,
                 outcome: Dict[str, Dict[str, Dict[str, StepResult]]],
                 chance: Optional[Dict[str, Dict[str, Optional[float]]]] = None) -> List[Row]:
    """One row per run, task and metric, from the scores on disk (so earlier runs count), with
    the chance levels of :func:`chance_levels`."""
    rows: List[Row] = []
    for run in runs:
        for t in entries:
            metrics = list(t.metrics)
            meta = tasks_dir / t.dir / "task_metadata.json"
            if not metrics and meta.is_file():
                metrics = list(json.loads(meta.read_text())["evaluation"])
            metrics = metrics or ["?"]
            emb_dir = _emb_dir(out, run, t.dir)
            scores = read_scores(emb_dir) if (emb_dir / "prediction-done.json").exists() else None
            steps = outcome.get(run.name, {})
            error = next((r.error for step in ("embed", "predict")
                          for task, r in steps.get(step, {}).items()
                          if Path(task).name == t.dir and not r.ok), None)
            for m in metrics:
                row = Row(run.name, t.dir, m, reference=t.reference.get(m),
                          chance=(chance or {}).get(t.dir, {}).get(m))
                if not meta.is_file():
                    row.status = "missing"
                elif scores is not None:
                    value = read_metric(scores, m)
                    if value is None:
                        row.status = "no_metric"
                    else:
                        row.score, row.std, row.folds = value
                elif error is not None:
                    row.status, row.detail = "failed", error[:500]
                else:
                    row.status = "pending"
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--module", action=ModuleAction, required=True, metavar="MODULE",
                        help="HEAR plugin import name (repeat to compare modules)")
    parser.add_argument("--model", action=RunOptionAction, metavar="PATH",
                        help="weights file for the --module before it")
    parser.add_argument("--model-options", action=RunOptionAction, metavar="JSON",
                        help="load_model keyword options (JSON object) for the --module before it")
    parser.add_argument("--label", action=RunOptionAction, metavar="NAME",
                        help="column name in the results for the --module before it")
    parser.add_argument("--config", required=True, type=Path, help="eval_configs/*.yaml")
    parser.add_argument("--tasks-dir", required=True, type=Path, help="directory of HEAR tasks")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: runs/eval/<config name>)")
    parser.add_argument("--grid", default=None,
                        help="probe grid: heareval's default|fast|faster, hear_suite's ci|demo, or "
                             "one the config defines (default: the config's)")
    parser.add_argument("--grid-points", type=int, default=None,
                        help="grid points tried per task (default: the config's)")
    parser.add_argument("--only", default=None, help="comma-separated task dirs of the config")
    parser.add_argument("--no-floor", action="store_true",
                        help="do not add the log-mel floor (hear_suite.logmel) nor mark scores "
                             "below it")
    parser.add_argument("--cpu", action="store_true", help="hide GPUs from heareval's steps")
    parser.add_argument("--no-png", action="store_true", help="skip the bar chart")
    parser.add_argument("-v", "--verbose", action="store_true", help="stream heareval's output")
    parser.set_defaults(runs=None)


def main(args: argparse.Namespace) -> int:
    absent = [m for m in STACK if importlib.util.find_spec(m) is None]
    if absent:
        print(f"the evaluation stack is incomplete (missing: {', '.join(absent)}). "
              f"Install it: {INSTALL_HINT}", file=sys.stderr)
        return 2
    config = load_config(args.config)
    runs = parse_runs(args.runs or [])
    out = args.out or Path("runs") / "eval" / config.name
    only = [t.strip() for t in args.only.split(",")] if args.only else None
    start = time.time()
    result = evaluate(config, runs, args.tasks_dir, out, grid=args.grid,
                      grid_points=args.grid_points, only=only, cpu=args.cpu,
                      verbose=args.verbose, png=not args.no_png, floor=not args.no_floor)
    print()
    print(result["paths"]["md"].read_text())
    print("results: " + ", ".join(str(p) for p in result["paths"].values()))
    if result["missing"]:
        print(f"missing tasks (skipped): {', '.join(result['missing'])}")
    for run, step, task, error in result["failed"]:
        print(f"FAILED [{run}] {step} {Path(task).name}: {error[:300]}")
    print(f"total {time.time() - start:.0f} s")
    return 1 if result["failed"] else 0
