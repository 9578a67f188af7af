"""Run heareval 2021.1.3's two steps on a current stack, with the workarounds applied in this
process only (site-packages is never edited).

    python -m hear_suite.evaluation.heareval_compat embed MODULE --tasks-dir D --embeddings-dir E
        [--model PATH] [--model-options JSON] TASK [TASK ...]
    python -m hear_suite.evaluation.heareval_compat predict [--grid NAME] [--grid-json JSON]
        [--grid-points N] [--gpus JSON] EMBEDDING_TASK_DIR [...]

Each task goes through heareval's own click runner (``heareval.embeddings.runner`` with
``--task``, ``heareval.predictions.runner``), so done-markers, file layout and scores are
exactly heareval's. A Python exception in one task is reported and the next task runs. Progress
goes to stdout as lines ``@@hear_suite {"task": ..., "step": ..., "event": ...}`` that
:mod:`hear_suite.evaluation.driver` reads. Events are ``start``, ``note`` (a message),
``done`` and ``failed``; the last two carry ``seconds`` (wall),
``cpu_seconds`` (user + system of the process and its finished children), ``rss_start_mb``
(the process's resident set when the task began: imports, model) and ``peak_rss_mb``, its
resident-set high-water mark while on that task (reset before each task through
``/proc/self/clear_refs`` on Linux; elsewhere the process's peak so far).

Workarounds (``../shared/specs/hear.md``, "Known breakage"):

- **CUDA trap**: ``heareval.embeddings.runner`` raises at import when torch sees a GPU and
  TensorFlow does not (every machine with TensorFlow's CPU build). The check is answered "yes"
  while that module is imported; embedding itself is pure torch and uses CUDA as usual.
- **pynvml names**: ``heareval.gpu_max_mem.device_name`` calls ``.decode()`` on what
  ``nvidia-ml-py`` (``pynvml`` >= 11.5) already returns as ``str``.
- **torch >= 2.6 ``weights_only``**: the predict step sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``
  in its own environment before importing torch: heareval reloads its own Lightning checkpoints,
  which hold pickled classes. Only this subprocess is affected; hear_suite's loaders are not.
- **event test epoch (pytorch-lightning 1.9)**: heareval sets ``trainer.fit_loop.current_epoch``
  before ``trainer.test`` so the test uses the post-processing chosen at the best validation
  epoch; in 1.9 that attribute is not read (``trainer.current_epoch`` comes from
  ``fit_loop.epoch_progress.current.completed``), so event tasks raise ``KeyError: <epoch>``.
  We set ``epoch_progress.current.completed`` as well.
- **sample rates**: heareval reads ``<task>/<model sample rate>/<split>/`` and fails when the
  task lacks that folder, as every task downloaded from Zenodo (48 kHz only) does for a 16 kHz
  model. Such a task is read from another rate's folder (the lowest rate at or above the
  model's, else the highest) and resampled on the fly (polyphase), to exactly
  ``sample_duration * rate`` samples when the task has a fixed duration; the task directory is
  not written to. A ``note`` progress event says so.
- **validation in small grids**: heareval's own task grid validates DCASE 2016 every 10 epochs
  whatever grid was chosen, so a grid of fewer epochs never validates and heareval fails
  ("No score None for this model"); the interval is then cut to the grid's ``max_epochs``
  (:func:`validation_within_epochs`, with a ``note``).
- **more grids**: heareval knows the grids ``default``, ``fast``, ``faster``. hear_suite adds
  :data:`EXTRA_GRIDS` (``ci``, ``demo``: overrides of heareval's ``PARAM_GRID``, separate for
  scene and event tasks), and ``--grid-json`` applies further overrides to the chosen grid
  (flat, or ``{"scene": {...}, "event": {...}}``; JSON values only: ``hidden_layers``,
  ``hidden_dim``, ``dropout``, ``lr``, ``patience``, ``max_epochs``, ``check_val_every_n_epoch``,
  ``batch_size``, and ``initialization`` as ``xavier_uniform`` / ``xavier_normal``). A modified
  grid is installed in place of heareval's "faster" grid while the task runs.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

MARK = "@@hear_suite "

# Grids added to heareval's default/fast/faster: overrides of its PARAM_GRID, separately for scene
# and event tasks. heareval's batch size is 1024 rows: a scene task of a few hundred clips gets one
# optimizer step per epoch (so it needs many epochs), while an event task has a row per frame
# (100 per second of audio) and many steps per epoch (so it needs few).
EXTRA_GRIDS: Dict[str, Dict[str, Dict[str, List[Any]]]] = {
    # The end-to-end test: one small probe, early stopping after 20 scene / 6 event epochs.
    "ci": {
        "scene": {"hidden_layers": [1], "hidden_dim": [256], "lr": [3.2e-3], "max_epochs": [100],
                  "check_val_every_n_epoch": [5], "patience": [4],
                  "initialization": ["xavier_uniform"]},
        "event": {"hidden_layers": [1], "hidden_dim": [256], "lr": [1e-3], "max_epochs": [15],
                  "check_val_every_n_epoch": [3], "patience": [2],
                  "initialization": ["xavier_uniform"]},
    },
    # The README demo: two learning rates for scene tasks, one probe for events.
    "demo": {
        "scene": {"hidden_layers": [1], "hidden_dim": [512], "lr": [1e-3, 3.2e-3],
                  "max_epochs": [150], "check_val_every_n_epoch": [5], "patience": [6],
                  "initialization": ["xavier_uniform"]},
        "event": {"hidden_layers": [1], "hidden_dim": [512], "lr": [1e-3], "max_epochs": [30],
                  "check_val_every_n_epoch": [3], "patience": [3],
                  "initialization": ["xavier_uniform"]},
    },
}
HEAREVAL_GRIDS = ("default", "fast", "faster")


def emit(**fields: Any) -> None:
    """One machine-readable progress line on stdout."""
    print(MARK + json.dumps(fields), flush=True)


# ---------------------------------------------------------------------------------------------
# patches
# ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _tensorflow_gpu_check_passes() -> Iterator[None]:
    """While active, ``tf.test.is_gpu_available`` answers True (heareval's import-time check)."""
    import tensorflow as tf

    original = tf.test.is_gpu_available
    tf.test.is_gpu_available = lambda *args, **kwargs: True
    try:
        yield
    finally:
        tf.test.is_gpu_available = original


def patch_gpu_max_mem() -> None:
    """``device_name`` that accepts the ``str`` names of current pynvml (nvidia-ml-py)."""
    import heareval.gpu_max_mem as gpu_max_mem
    import torch

    if not torch.cuda.is_available():
        return

    def device_name(device_index: int = 0) -> str:
        name = gpu_max_mem.nvmlDeviceGetName(gpu_max_mem.nvmlDeviceGetHandleByIndex(device_index))
        return name.decode("utf-8") if isinstance(name, bytes) else str(name)

    gpu_max_mem.device_name = device_name


def import_embeddings_runner():
    """``heareval.embeddings.runner`` imported past its CUDA/TensorFlow check."""
    patch_gpu_max_mem()
    if "heareval.embeddings.runner" not in sys.modules:
        with _tensorflow_gpu_check_passes():
            import heareval.embeddings.runner  # noqa: F401
    return sys.modules["heareval.embeddings.runner"]


def audio_rates(task_dir: Path) -> List[int]:
    """The sample rates a task has audio folders for, ascending."""
    return sorted(int(p.name) for p in Path(task_dir).iterdir() if p.is_dir() and p.name.isdigit())


def source_rate(task_dir: Path, rate: int) -> int:
    """The audio folder to resample from for a model at ``rate``: the lowest rate at or above
    it (a downsampling loses nothing the model could use), else the highest there is."""
    rates = audio_rates(task_dir)
    if not rates:
        raise FileNotFoundError(f"{task_dir}: no <sample_rate>/ audio folder")
    above = [r for r in rates if r >= rate]
    return above[0] if above else rates[-1]


class ResampledAudio:
    """heareval's audio dataset for a split stored at another rate: items ``(float32
    (samples,), file name)`` at ``rate``, ``length`` samples each when given."""

    def __init__(self, data: Dict, audio_dir: Path, from_rate: int, rate: int,
                 length: Optional[int]) -> None:
        if not audio_dir.is_dir():
            raise FileNotFoundError(f"{audio_dir} is not a directory")
        self.filenames, self.audio_dir = list(data), audio_dir
        self.from_rate, self.rate, self.length = from_rate, rate, length

    def __len__(self) -> int:
        return len(self.filenames)

    def __getitem__(self, idx: int) -> Tuple[Any, str]:
        import numpy as np
        import soundfile as sf

        from hear_suite.audio import resample

        name = self.filenames[idx]
        audio, sr = sf.read(str(self.audio_dir / name), dtype="float32")
        if sr != self.from_rate:
            raise ValueError(f"{self.audio_dir / name}: {sr} Hz in the {self.from_rate}/ folder")
        audio = resample(audio, sr, self.rate)
        if self.length is not None:  # the exact length hear-preprocess gives each rate
            audio = np.pad(audio[:self.length], (0, max(0, self.length - len(audio))))
        return audio.astype(np.float32), name


def patch_missing_sample_rate() -> None:
    """Let heareval embed a task that has no audio folder at the model's sample rate."""
    import heareval.embeddings.task_embeddings as te
    from torch.utils.data import DataLoader

    original = te.get_dataloader_for_embedding
    if getattr(original, "_hear_suite_patched", False):
        return

    def get_dataloader_for_embedding(data, audio_dir, embedding, batch_size=64):
        audio_dir = Path(audio_dir)
        if audio_dir.is_dir():
            return original(data, audio_dir, embedding, batch_size=batch_size)
        task_dir, split, rate = audio_dir.parent.parent, audio_dir.name, int(embedding.sample_rate)
        from_rate = source_rate(task_dir, rate)
        duration = json.loads((task_dir / "task_metadata.json").read_text())["sample_duration"]
        length = None if duration is None else int(round(duration * rate))
        emit(task=task_dir.name, step="embed", event="note",
             message=f"no {rate}/ audio: split {split} resampled from {from_rate}/ on the fly")
        dataset = ResampledAudio(data, task_dir / str(from_rate) / split, from_rate, rate, length)
        return DataLoader(dataset, batch_size=batch_size, shuffle=False)

    get_dataloader_for_embedding._hear_suite_patched = True
    te.get_dataloader_for_embedding = get_dataloader_for_embedding


def patch_event_test_epoch() -> None:
    """Make ``trainer.test`` see the best validation epoch under pytorch-lightning 1.9."""
    import heareval.predictions.task_predictions as tp

    original = tp.task_predictions_test
    if getattr(original, "_hear_suite_patched", False):
        return

    def task_predictions_test(*args, **kwargs):
        grid_point = kwargs["grid_point"] if "grid_point" in kwargs else args[1]
        grid_point.trainer.fit_loop.epoch_progress.current.completed = grid_point.epoch
        return original(*args, **kwargs)

    task_predictions_test._hear_suite_patched = True
    tp.task_predictions_test = task_predictions_test


def _for_type(spec: Dict[str, Any], embedding_type: str) -> Dict[str, Any]:
    """A grid spec is either flat overrides or ``{"scene": {...}, "event": {...}}``."""
    if spec and set(spec) <= {"scene", "event"}:
        return dict(spec.get(embedding_type) or {})
    return dict(spec)


def build_grid(name: str, overrides: Optional[Dict[str, Any]],
               embedding_type: str) -> Optional[Dict[str, List[Any]]]:
    """The parameter grid for a task: heareval's grid ``name`` (or hear_suite's, on top of
    heareval's ``PARAM_GRID``) with ``overrides`` applied, or None when heareval's own named grid
    is used unchanged. Values must be JSON-able; ``initialization`` is given by name."""
    import heareval.predictions.task_predictions as tp
    import torch

    if name in HEAREVAL_GRIDS:
        base = {"default": tp.PARAM_GRID, "fast": tp.FAST_PARAM_GRID,
                "faster": tp.FASTER_PARAM_GRID}[name]
        changes = {}
    elif name in EXTRA_GRIDS:
        base, changes = tp.PARAM_GRID, _for_type(EXTRA_GRIDS[name], embedding_type)
    else:
        raise ValueError(f"unknown grid {name!r}: heareval has {HEAREVAL_GRIDS}, "
                         f"hear_suite adds {sorted(EXTRA_GRIDS)}")
    changes.update(_for_type(overrides or {}, embedding_type))
    if not changes:
        return None
    inits = {"xavier_uniform": torch.nn.init.xavier_uniform_,
             "xavier_normal": torch.nn.init.xavier_normal_}
    grid = copy.deepcopy(base)
    for key, values in changes.items():
        if key not in grid:
            raise ValueError(f"unknown grid parameter {key!r}; heareval's are {sorted(grid)}")
        values = values if isinstance(values, list) else [values]
        if key == "initialization":
            unknown = [v for v in values if v not in inits]
            if unknown:
                raise ValueError(f"initialization must be among {sorted(inits)}, got {unknown}")
            values = [inits[v] for v in values]
        grid[key] = values
    return grid


@contextlib.contextmanager
def grid_installed(grid: Dict[str, List[Any]]) -> Iterator[str]:
    """Install ``grid`` as heareval's "faster" grid for the duration; yields the name to pass."""
    import heareval.predictions.task_predictions as tp

    saved = tp.FASTER_PARAM_GRID
    tp.FASTER_PARAM_GRID = grid
    try:
        yield "faster"
    finally:
        tp.FASTER_PARAM_GRID = saved


@contextlib.contextmanager
def validation_within_epochs(metadata: Dict[str, Any], grid: Optional[Dict[str, List[Any]]],
                             task: str) -> Iterator[None]:
    """Make heareval validate at least once. heareval's own task grid validates DCASE 2016
    every 10 epochs whatever grid was chosen; with fewer epochs than that (a small grid) no
    validation runs and heareval fails with "No score None for this model". While active, that
    task's validation interval is cut to the grid's largest ``max_epochs``."""
    import heareval.predictions.task_predictions as tp

    name = metadata["task_name"]
    task_grid = tp.TASK_SPECIFIC_PARAM_GRID.get(name)
    final = dict(grid if grid is not None else tp.PARAM_GRID)
    final.update(task_grid or {})
    final.update(metadata.get("evaluation_params", {}).get("task_specific_param_grid", {}))
    most = max(final["max_epochs"])
    if task_grid is None or min(final["check_val_every_n_epoch"]) <= most:
        yield
        return
    emit(task=task, step="predict", event="note",
         message=f"heareval validates {name} every {min(final['check_val_every_n_epoch'])} epochs, "
                 f"more than the grid's {most}: validating every {most} instead")
    tp.TASK_SPECIFIC_PARAM_GRID[name] = dict(task_grid, check_val_every_n_epoch=[most])
    try:
        yield
    finally:
        tp.TASK_SPECIFIC_PARAM_GRID[name] = task_grid


# ---------------------------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------------------------

def reset_peak_rss() -> None:
    """Reset this process's resident-set high-water mark to its current size (Linux; a no-op
    where ``/proc/self/clear_refs`` cannot be written)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _status_mb(field: str) -> Optional[float]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def rss_mb() -> Optional[float]:
    """This process's resident set now, in MB (Linux; else None)."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> Optional[float]:
    """The resident-set high-water mark in MB (``VmHWM``; else ``ru_maxrss``)."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, OSError):
        return None


def cpu_seconds() -> float:
    """CPU time (user + system, all threads) of this process and its finished children
    (heareval's data-loader workers): less sensitive than wall time to a busy machine."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_tasks(step: str, tasks: List[str], run_one: Callable[[str], None]) -> int:
    failed = 0
    for task in tasks:
        emit(task=task, step=step, event="start")
        rss_start = rss_mb()  # what the process held before (imports, model)
        reset_peak_rss()
        start, cpu_start = time.time(), cpu_seconds()

        def cost() -> Dict[str, Any]:
            # the kernel updates the high-water mark lazily: it may lag the size at the reset
            peak = peak_rss_mb()
            peak = max(peak, rss_start) if peak is not None and rss_start is not None else peak
            return {"seconds": round(time.time() - start, 2),
                    "cpu_seconds": round(cpu_seconds() - cpu_start, 2),
                    "rss_start_mb": rss_start, "peak_rss_mb": peak}

        try:
            run_one(task)
        except (Exception, SystemExit) as exc:  # click may raise SystemExit on bad arguments
            failed += 1
            traceback.print_exc()
            sys.stdout.flush()
            emit(task=task, step=step, event="failed", **cost(),
                 error=f"{type(exc).__name__}: {exc}"[-2000:])
        else:
            emit(task=task, step=step, event="done", **cost())
    return failed


def embed(args: argparse.Namespace) -> int:
    runner = import_embeddings_runner()
    patch_missing_sample_rate()

    def run_one(task: str) -> None:
        argv = [args.module, "--tasks-dir", args.tasks_dir, "--task", task,
                "--embeddings-dir", args.embeddings_dir, "--model-options", args.model_options]
        if args.model:
            argv += ["--model", args.model]
        runner.runner.main(argv, standalone_mode=False)

    return _run_tasks("embed", args.tasks, run_one)


def predict(args: argparse.Namespace) -> int:
    import heareval.predictions.runner as runner

    patch_gpu_max_mem()
    patch_event_test_epoch()
    overrides = json.loads(args.grid_json) if args.grid_json else None

    def run_one(task_dir: str) -> None:
        with open(os.path.join(task_dir, "task_metadata.json")) as f:
            metadata = json.load(f)
        grid = build_grid(args.grid, overrides, metadata["embedding_type"])
        common = ["--grid-points", str(args.grid_points), "--deterministic", "True"]
        if args.gpus is not None:
            common += ["--gpus", args.gpus]
        with validation_within_epochs(metadata, grid, task_dir):
            if grid is None:
                runner.runner.main([task_dir, "--grid", args.grid, *common], standalone_mode=False)
            else:
                with grid_installed(grid) as name:
                    runner.runner.main([task_dir, "--grid", name, *common], standalone_mode=False)

    return _run_tasks("predict", args.task_dirs, run_one)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hear_suite.evaluation.heareval_compat",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    e = sub.add_parser("embed", help="heareval.embeddings.runner, one task at a time")
    e.add_argument("module")
    e.add_argument("tasks", nargs="+", help="task directory names inside --tasks-dir")
    e.add_argument("--tasks-dir", required=True)
    e.add_argument("--embeddings-dir", required=True)
    e.add_argument("--model", default=None)
    e.add_argument("--model-options", default="{}")
    p = sub.add_parser("predict", help="heareval.predictions.runner, one task at a time")
    p.add_argument("task_dirs", nargs="+", help="embedding task directories")
    p.add_argument("--grid", default="default")
    p.add_argument("--grid-json", default=None, help="overrides applied to the --grid")
    p.add_argument("--grid-points", type=int, default=8)
    p.add_argument("--gpus", default=None, help='JSON, e.g. "[0]" (default: heareval\'s)')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.step == "predict":
        # Before torch is imported (it reads the variable per load; set early all the same).
        os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
        return 1 if predict(args) else 0
    return 1 if embed(args) else 0


if __name__ == "__main__":
    sys.exit(main())
