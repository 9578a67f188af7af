"""Cost of the HEAR 2021 replica run, per task and model, and an extrapolation to the real benchmark.

    python scripts/hear2021_report.py --eval runs/h21/eval --tasks replica/ \
        [--make-log make_tasks.log] [--load-log load.log] [--out results/hear2021_replica.md]

Reads what `hear-suite eval` left in ``--eval`` (``results.json``: scores, heareval's seconds and
hear_suite's ``cost`` per step; the embeddings' dimension files) and the replica suite in
``--tasks`` (clip counts, audio seconds, disk), and writes ``--out`` (Markdown) with
``.csv`` (the score table) and ``.json`` (every figure of the report) beside it.

The extrapolation (labelled as such in the report) scales what was measured:

- embedding: CPU seconds per audio second, measured per task and model, times the real task's
  audio (``hear2021.TASKS[...].real_audio_seconds``);
- probes: heareval's default grid (8 grid points on the first split, then one training per
  other fold; 1 or 2 hidden layers of 1024; batches of 1024 rows; validation every 3 epochs,
  early stopping after 20 checks without gain, at most 500 epochs) as training steps times the
  seconds of one such step, measured here for each embedding size and vocabulary
  (:func:`step_seconds`), between 60 and 500 epochs per training;
- one GPU (not measured: no GPU was available): model FLOPs per audio second (counted with
  ``torch.utils.flop_counter``) at an assumed sustained rate, plus heareval's single-threaded
  audio pipeline (reading, resampling, writing), which the log-mel floor's embedding time
  measures almost alone; probe steps at an assumed time per step.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import soundfile as sf
import torch

from hear_suite.taskgen.hear2021.suite import TASKS
from hear_suite.tasks import write_atomic

GPU_TFLOPS = 20.0        # assumed sustained float32 rate of these small models on one GPU
GPU_STEP_S = 0.002       # assumed seconds per probe training step on one GPU (MLP + Lightning)
GRID_POINTS = 8
# heareval's default grid: validation every 3 epochs, early stop after 20 checks, max 500
# epochs; heareval's own TASK_SPECIFIC_PARAM_GRID validates DCASE 2016 every 10 epochs; a
# task's metadata may override (MAESTRO: max 50 epochs, validation every epoch).
DEFAULT_GRID = {"check_val_every_n_epoch": 3, "patience": 20, "max_epochs": 500}
HEAREVAL_TASK_GRID = {"dcase2016_task2": {"check_val_every_n_epoch": 10}}


def epochs_range(name: str) -> Tuple[int, int, int]:
    """``(fewest, most, check)``: a default-grid training's epochs, earliest early stop (20
    checks without gain) to ``max_epochs``, and the epochs between validations."""
    t = TASKS[name]
    grid = dict(DEFAULT_GRID, **HEAREVAL_TASK_GRID.get(t.task_name, {}))
    for key, values in t.metadata().get("evaluation_params", {}).get("task_specific_param_grid", {}).items():
        grid[key] = values[0]
    check, most = grid["check_val_every_n_epoch"], grid["max_epochs"]
    return min(grid["patience"] * check, most), most, check


def replica_stats(task_dir: Path) -> Dict[str, float]:
    """Clips, audio seconds (at the first rate folder) and disk MB of one replica directory."""
    rate_dir = sorted(p for p in task_dir.iterdir() if p.is_dir() and p.name.isdigit())[0]
    wavs = list(rate_dir.rglob("*.wav"))
    seconds = sum(sf.info(str(w)).duration for w in wavs)
    disk = sum(p.stat().st_size for p in task_dir.rglob("*") if p.is_file())
    return {"clips": len(wavs), "audio_s": round(seconds, 1), "disk_mb": round(disk / 2 ** 20, 1)}


def train_rows(name: str, rows_per_s: Optional[float]) -> float:
    """Rows of the first split's training set in the real task: clips (scene) or frames
    (event: audio seconds times the model's frames per second). TVT: the train share of the
    clips (hear-preprocess's split sizes, else 80 %); k-fold: k - 2 of k folds."""
    t = TASKS[name]
    share = {"dcase2016_task2": 0.6, "nsynth_pitch": 0.8, "speech_commands": 0.85,
             "beehive_states_fold0": 0.45, "beehive_states_fold1": 0.45, "fsd50k": 36796 / 51185}
    fraction = share.get(t.task_name, 0.8) if t.nfolds is None else (t.nfolds - 2) / t.nfolds
    if t.embedding_type == "event":
        return fraction * t.real_audio_seconds * (rows_per_s or 0.0)
    return fraction * t.real_clips


def step_seconds(dim: int, labels: int, layers: int, repeats: int = 20) -> float:
    """Seconds of one heareval-shaped training step on this CPU (one thread; the fastest of
    ``repeats``): a batch of 1024 rows through ``layers`` x (Linear 1024, BatchNorm, Dropout
    0.1, ReLU), a linear head, cross-entropy, backward, Adam."""
    torch.manual_seed(0)
    blocks, width = [], dim
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, 1024), torch.nn.BatchNorm1d(1024), torch.nn.Dropout(0.1),
                   torch.nn.ReLU()]
        width = 1024
    model = torch.nn.Sequential(*blocks, torch.nn.Linear(width, labels))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(1024, dim), torch.randint(0, labels, (1024,))
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed by other work on a shared machine


def model_gflops_per_audio_s(module: str) -> float:
    """GFLOP per second of audio of ``module``'s timestamp embeddings (10 s clip, counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    mod = importlib.import_module(module)
    model = mod.load_model()
    with FlopCounterMode(display=False) as counter:
        mod.get_timestamp_embeddings(torch.rand(1, model.sample_rate * 10) * 2 - 1, model)
    return counter.get_total_flops() / 1e9 / 10


def _emb_dir(eval_dir: Path, run: Dict, task: str) -> Path:
    from hear_suite.evaluation.runs import Run

    r = Run(run["module"], run.get("model"), run.get("options") or {}, run.get("label"))
    return eval_dir / "embeddings" / r.run_id / r.heareval_dir_name() / task


def _fmt(x: Optional[float], digits: int = 1) -> str:
    return "" if x is None else f"{x:,.{digits}f}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:,.1f} min"


def build(eval_dir: Path, tasks_dir: Path) -> Dict:
    """Every figure of the report, as a dict (written as the .json)."""
    results = json.loads((eval_dir / "results.json").read_text())
    runs = results["runs"]
    suite = {name: replica_stats(tasks_dir / name) for name in TASKS}
    torch.set_num_threads(1)
    steps: Dict[str, float] = {}
    report: Dict = {"suite": suite, "runs": {}, "grid": results.get("grid")}
    for run in runs:
        name = run.get("label") or run["module"]
        cost = results.get("cost", {}).get(name, {})
        per_task, totals = {}, {"embed_s": 0.0, "embed_cpu_s": 0.0, "predict_s": 0.0,
                                "predict_cpu_s": 0.0, "full_embed_cpu_s": 0.0,
                                "full_probe_steps": 0.0, "full_probe_s": [0.0, 0.0]}
        for task, spec in TASKS.items():
            c = cost.get(task, {})
            embed, predict = c.get("embed", {}), c.get("predict", {})
            emb_dir = _emb_dir(eval_dir, run, task)
            dims = json.loads((emb_dir / f"{spec.splits[0]}.embedding-dimensions.json").read_text()) \
                if (emb_dir / f"{spec.splits[0]}.embedding-dimensions.json").is_file() else None
            row = {"embed_s": embed.get("seconds"), "embed_cpu_s": embed.get("cpu_seconds"),
                   "embed_peak_mb": embed.get("peak_rss_mb"), "embed_start_mb": embed.get("rss_start_mb"),
                   "predict_s": predict.get("seconds"), "predict_cpu_s": predict.get("cpu_seconds"),
                   "predict_peak_mb": predict.get("peak_rss_mb"), "dim": dims[1] if dims else None}
            if embed.get("cpu_seconds"):
                row["x_real_time_cpu"] = suite[task]["audio_s"] / embed["cpu_seconds"]
                row["full_embed_cpu_s"] = spec.real_audio_seconds / row["x_real_time_cpu"]
                totals["full_embed_cpu_s"] += row["full_embed_cpu_s"]
            if dims:
                split0 = tasks_dir / task / "48000" / spec.splits[0]
                audio0 = sum(sf.info(str(w)).duration for w in split0.glob("*.wav")) if split0.is_dir() else 0
                rows_per_s = dims[0] / audio0 if spec.embedding_type == "event" and audio0 else None
                rows = train_rows(task, rows_per_s)
                key = f"{dims[1]}x{len(spec.labels)}"
                if key not in steps:
                    steps[key] = statistics.mean(step_seconds(dims[1], len(spec.labels), n)
                                                 for n in (1, 2))
                trainings = GRID_POINTS + (spec.nfolds - 1 if spec.nfolds else 0)
                # one epoch: the training batches, plus every `check` epochs a validation pass
                # (forward only, about a third of a step per batch) over the valid rows: one
                # fold (k-fold), about a quarter of train (train/valid/test)
                fewest, most, check = epochs_range(task)
                valid_share = 1 / (spec.nfolds - 2) if spec.nfolds else 0.25
                per_epoch = math.ceil(rows / 1024) * (1 + valid_share / (3 * check))
                row["full_probe_steps"] = trainings * per_epoch
                row["epochs"] = [fewest, most]
                row["full_probe_s"] = [trainings * per_epoch * e * steps[key] for e in (fewest, most)]
                totals["full_probe_steps"] += row["full_probe_steps"]
                totals["full_probe_s"] = [a + b for a, b in zip(totals["full_probe_s"], row["full_probe_s"])]
                totals["full_probe_gpu_s"] = [a + row["full_probe_steps"] * e * GPU_STEP_S for a, e in
                                              zip(totals.get("full_probe_gpu_s", [0.0, 0.0]), (fewest, most))]
            for k in ("embed_s", "embed_cpu_s", "predict_s", "predict_cpu_s"):
                totals[k] += row[k] or 0.0
            per_task[task] = row
        report["runs"][name] = {"module": run["module"], "tasks": per_task, "totals": totals,
                                "gflops_per_audio_s": model_gflops_per_audio_s(run["module"])}
    report["step_seconds"] = steps
    report["real_audio_s"] = sum(t.real_audio_seconds for t in TASKS.values())
    report["replica_audio_s"] = sum(s["audio_s"] for s in suite.values())
    return report


def to_markdown(report: Dict, scores_md: str, context: str) -> str:
    runs = report["runs"]
    suite = report["suite"]
    lines = ["# HEAR 2021 replica suite: every model end to end, cost per task, and the real "
             "benchmark's cost", "", context, "", "## Scores (synthetic audio: they show that "
             "every step ran, not how good a model is)", "", scores_md.strip(), "",
             "## The replica suite", "",
             "| task directory | clips (real) | clips | audio (s) | disk (MB) |", "|---|---|---|---|---|"]
    for name, s in suite.items():
        lines.append(f"| {name} | {TASKS[name].real_clips:,} | {s['clips']:,} | {s['audio_s']:,.0f} | "
                     f"{s['disk_mb']:,.0f} |")
    total = {k: sum(s[k] for s in suite.values()) for k in ("clips", "audio_s", "disk_mb")}
    lines.append(f"| **total** | {sum(t.real_clips for t in TASKS.values()):,} | {total['clips']:,} | "
                 f"{total['audio_s']:,.0f} | {total['disk_mb']:,.0f} |")
    lines += ["", "## Cost per task (measured)", "",
              "Wall and CPU seconds of heareval's embedding step and prediction step (probes) on "
              "each task; `x rt`: audio seconds embedded per CPU second; memory: the step "
              "process's peak resident set while on the task (MB; in brackets its size when "
              "the task began: Python, torch, TensorFlow, the model).", ""]
    for name, r in runs.items():
        lines += [f"### {name}", "",
                  "| task | embed wall s | embed CPU s | x rt (CPU) | embed peak MB | probe wall s | "
                  "probe CPU s | probe peak MB |", "|---|---|---|---|---|---|---|---|"]
        for task, row in r["tasks"].items():
            lines.append(f"| {task} | {_fmt(row['embed_s'])} | {_fmt(row['embed_cpu_s'])} | "
                         f"{_fmt(row.get('x_real_time_cpu'), 0)} | {_fmt(row['embed_peak_mb'], 0)} "
                         f"({_fmt(row['embed_start_mb'], 0)}) | {_fmt(row['predict_s'])} | "
                         f"{_fmt(row['predict_cpu_s'])} | {_fmt(row['predict_peak_mb'], 0)} |")
        t = r["totals"]
        lines += [f"| **total** | {_fmt(t['embed_s'])} | {_fmt(t['embed_cpu_s'])} | "
                  f"{report['replica_audio_s'] / max(t['embed_cpu_s'], 1e-9):,.0f} | | "
                  f"{_fmt(t['predict_s'])} | {_fmt(t['predict_cpu_s'])} | |", ""]
    real = report["real_audio_s"]
    floor = next((r for n, r in runs.items() if "floor" in n), None)
    lines += ["## Extrapolation to the real benchmark (an estimate, not a measurement)", "",
              f"The 20 real directories hold {real / 3600:,.0f} h of audio (per directory: clips "
              "on hearbenchmark.com times the clip length; FSD50K at its mean 7.6 s; each beehive "
              f"directory holds both hives' 576 ten-minute clips), {real / report['replica_audio_s']:,.0f} "
              "times the replica's.", "",
              "- **This CPU, embedding**: each task's measured CPU seconds per audio second times "
              "its real audio (one thread; two cores halve it when two tasks or threads run at "
              "once). Per-task fixed costs (loading the model) are scaled too, so this errs high.",
              f"- **This CPU, probes**: heareval's default grid ({GRID_POINTS} grid points on the first "
              "split, then one training per other fold; batches of 1024 rows; scene rows = clips, "
              "event rows = frames at the model's hop) times the measured seconds of one training "
              "step of that shape here, from the earliest early stop (20 validations without gain: "
              "60 epochs; DCASE, validated every 10 epochs by heareval's own task grid: 200; "
              "MAESTRO, validated every epoch: 20) to max_epochs (500; MAESTRO's metadata: 50). "
              "Not included: sed_eval scoring of DCASE's validations, which heareval itself "
              "calls very slow.",
              f"- **One GPU (assumed, no GPU measured)**: the model's FLOPs per audio second "
              f"(counted) at {GPU_TFLOPS:.0f} TFLOP/s, plus heareval's audio pipeline, which runs in "
              "one CPU thread whatever the device (its data loader has no workers): taken as the "
              "log-mel floor's measured embedding CPU time, as that model's own compute is "
              f"negligible. Probes at {GPU_STEP_S * 1000:.0f} ms per training step.", "",
              "| model | GFLOP / audio s | CPU: embed (1 thread) | CPU: probes | GPU: embed | GPU: probes |",
              "|---|---|---|---|---|---|"]
    pipeline_s = floor["totals"]["full_embed_cpu_s"] if floor else 0.0
    for name, r in runs.items():
        t = r["totals"]
        gpu_embed = r["gflops_per_audio_s"] * real / (GPU_TFLOPS * 1e3) + pipeline_s
        lo, hi = t["full_probe_s"]
        glo, ghi = t.get("full_probe_gpu_s", [0.0, 0.0])
        lines.append(f"| {name} | {r['gflops_per_audio_s']:.3f} | {_hours(t['full_embed_cpu_s'])} | "
                     f"{_hours(lo)} - {_hours(hi)} | {_hours(gpu_embed)} | {_hours(glo)} - {_hours(ghi)} |")
    lines += ["", "Where the estimate goes (CPU probes, fewest epochs; hours):", ""]
    for name, r in runs.items():
        ranked = sorted(r["tasks"].items(), key=lambda kv: -(kv[1].get("full_probe_s") or [0])[0])
        lines.append(f"- {name}: " + ", ".join(f"{task} {row['full_probe_s'][0] / 3600:.1f}"
                                               for task, row in ranked[:3]))
    lines += ["", "Seconds of one probe training step measured here (1 thread, fastest of 20, mean "
              "of 1 and 2 hidden layers), by embedding size x vocabulary: " +
              ", ".join(f"{k}: {v * 1000:.0f} ms" for k, v in sorted(report["step_seconds"].items())) +
              ". On the shared machine these moved by up to a third between runs of this report "
              "(so did the probe estimates); the embedding figures come from the evaluation "
              "run itself.", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", required=True, type=Path, help="the --out of hear-suite eval")
    parser.add_argument("--tasks", required=True, type=Path, help="the replica suite")
    parser.add_argument("--context", type=Path, default=None,
                        help="Markdown put under the title (what was run, machine, load)")
    parser.add_argument("--out", type=Path, default=Path("results/hear2021_replica.md"))
    args = parser.parse_args(argv)
    if not (args.eval / "results.json").is_file():
        print(f"{args.eval}: no results.json (run hear-suite eval first)", file=sys.stderr)
        return 2
    report = build(args.eval, args.tasks)
    scores = (args.eval / "results.md").read_text().split("\n", 2)[2]  # without its title
    context = args.context.read_text() if args.context else ""
    write_atomic(args.out, to_markdown(report, scores, context))
    write_atomic(args.out.with_suffix(".json"), json.dumps(report, indent=1))
    write_atomic(args.out.with_suffix(".csv"), (args.eval / "results.csv").read_bytes())
    print(f"wrote {args.out}, {args.out.with_suffix('.json')}, {args.out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
