"""Device check of every shipped model: CUDA vs CPU parity, throughput in float32, TF32 and bf16
autocast, peak memory of the batches and of one long clip; a Markdown report.

    bash scripts/device_check.sh [--short] [--models kwmlp logmel ...] [--out [PATH]]
    python benchmarks/device_check.py ...          # the same

The models: every ``weights/*.pt`` (found when the check starts, ``registry.shipped_weights``),
each labelled by its file stem, plus the weightless modules (``hear_suite.logmel``), plus the
published ASTs given with ``--published`` (default: every original ``*.pth`` and Hugging Face
directory in ``pretrained_models/`` at the repository's top, where a user who downloaded
``audioset_10_10_0.4593.pth`` puts it; the folder is not tracked).

1. Parity: timestamp and scene embeddings of 4 clips of ``--clip-seconds`` (seeded tones in
   noise) on the CPU and on CUDA, both in strict float32; the largest difference against the
   model's tolerance (``TOLERANCE``).
2. Throughput: ``--batch`` clips of ``--clip-seconds``, timestamp and scene, in x real time
   (audio seconds per wall second, median of ``--repeats`` after a warm-up, CUDA synchronised),
   in float32, TF32 (matmuls and cuDNN convolutions) and bf16 autocast; TF32 and bf16 outputs
   against float32, within the tolerance or marked **NO**. Peak memory of one more call.
3. One clip of ``--long-seconds`` (default 20 minutes), float32: seconds and peak memory of the
   timestamp and of the scene embeddings.

Memory: MB of 2^20 bytes; on CUDA ``torch.cuda.max_memory_allocated`` (statistics reset per
measurement), on the CPU the resident set (peak RSS, reset per measurement; an earlier peak that
glibc kept can hide part of a later one: the per-model benchmarks measure in fresh processes).
"extra" is the peak above what is allocated when the call starts (model, input audio).

Without CUDA the same measurements run on the CPU: parity is reported as skipped, TF32 does not
exist there (bf16 autocast runs on the CPU), and the report is written only with ``--out``. With
CUDA it is written to ``results/device_<gpu name>.md`` unless ``--out PATH`` says otherwise,
rewritten (atomically) after each model, so a run cut short still leaves what it measured.
No model is started after ``--budget-seconds`` (default 7 minutes): the rest are reported as
not measured. The report is printed last (progress goes to stderr), so the tail of the output
holds it. Exit status 1 when a float32 measurement raised, CUDA vs CPU parity is outside
tolerance or a model was not measured; TF32 and bf16 deviations, and their errors (a kernel
without bf16), are reported, not failed: they are properties of the mode.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import torch
from torch import Tensor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import median_seconds, peak_memory_mb  # noqa: E402

from hear_suite.registry import MODELS, shipped_weights  # noqa: E402
from hear_suite.tasks import write_atomic  # noqa: E402

SR = 16000
ROOT = HERE.parent
KINDS = ("timestamp", "scene")
MODES = ("float32", "tf32", "bf16")
FULL = dict(batch=64, clip_seconds=10.0, long_seconds=1200.0, repeats=5)
SHORT = dict(batch=4, clip_seconds=10.0, long_seconds=120.0, repeats=1)
PARITY_CLIPS = 4

# How each family's embeddings are compared, and the bound per comparison: "max_abs" over all
# values (continuous embeddings), or "sum_abs", the largest over embedding vectors of the sum of
# absolute differences (bag-of-codes code counts per second, as in tests/golden.py: a vector
# sums to 143, and a code that flips between two near-tied centroids adds 2 / window seconds).
# "cuda": CUDA vs CPU, both float32; "tf32", "bf16": that mode vs float32 on the same device.
# The bounds say what a user can accept, not what was measured: float32 kernels may differ in
# summation order only; bf16 keeps 8 significant bits (0.4 %) and TF32 11, so with float32
# accumulation a deviation of a few % of the embeddings' scale (kwmlp ~4, ast ~17 after layer
# norms) for bf16, and a fifth of that for TF32, is rounding, not a broken kernel. The log-mel
# floor's quiet bands (50 dB under the loudest) amplify relative errors through the log: a
# looser float32 bound. Bag of codes: up to 2 (float32), 7 (TF32) and 14 (bf16) codes of 143
# per second moved.
TOLERANCE: Dict[str, tuple] = {
    "hear_suite.kwmlp": ("max_abs", {"cuda": 1e-3, "tf32": 0.05, "bf16": 0.25}),
    "hear_suite.ast": ("max_abs", {"cuda": 1e-3, "tf32": 0.05, "bf16": 0.25}),
    "hear_suite.logmel": ("max_abs", {"cuda": 1e-2, "tf32": 0.05, "bf16": 0.25}),
    "hear_suite.bagofcodes": ("sum_abs", {"cuda": 4.0, "tf32": 14.0, "bf16": 28.0}),
}


@dataclass(frozen=True)
class Entry:
    label: str                  # weights file stem, or the family name when it has no weights
    module: str
    weights: Optional[str]      # file name in weights/, loaded by name as a user would


PUBLISHED = ROOT / "pretrained_models"


def published_asts(folder: Path = PUBLISHED) -> List[str]:
    """Original AST files and Hugging Face AST directories in ``folder`` (none if it is absent)."""
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.iterdir()
                  if p.suffix == ".pth" or (p / "config.json").is_file())


def shipped_models(published: Sequence[str] = ()) -> List[Entry]:
    """Every shipped weights file (read from weights/ now: files may have been added), then the
    registered modules that have no weights, then the ``published`` AST files."""
    out = [Entry(Path(w).stem, m, w) for m, w in shipped_weights()]
    out += [Entry(e.name, e.module, None) for e in MODELS.values() if e.weights is None]
    out += [Entry(Path(p).stem or Path(p).name, "hear_suite.ast", p) for p in published]
    return out


def tone_clips(n: int, seconds: float, seed: int = 0) -> Tensor:
    """``(n, seconds * 16000)`` float32 in [-1, 1]: clip ``i`` holds a tone of
    ``110 * 2**((i % 16) / 4)`` Hz and its fifth (quarter-octave steps, so clips differ; all
    under 2.3 kHz) in seeded uniform noise."""
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    f = 110.0 * 2.0 ** (torch.arange(n, dtype=torch.float64) % 16 / 4)
    # phases in float64: float32 loses the phase of a kHz tone after a few minutes
    phase = 2 * torch.pi * f[:, None] * t
    tones = 0.3 * torch.sin(phase) + 0.2 * torch.sin(1.5 * phase)
    noise = torch.rand(n, t.numel(), generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return (tones + 0.1 * noise).float()


@contextlib.contextmanager
def precision(mode: str, device: str) -> Iterator[None]:
    """Run in ``mode``: ``float32`` with TF32 off (cuDNN allows TF32 convolutions by default, so
    plain float32 on CUDA is not strict float32), ``tf32`` on for matmuls and convolutions,
    ``bf16`` autocast over float32 weights. The previous TF32 flags come back afterwards."""
    if device != "cuda":
        if mode == "tf32":
            raise ValueError("TF32 exists on CUDA only")
        with torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else \
                contextlib.nullcontext():
            yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16) if mode == "bf16" else \
                contextlib.nullcontext():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def embedder(hear, model, kind: str) -> Callable[[Tensor], Tensor]:
    """``audio -> embeddings`` of ``kind`` (timestamps dropped: they are arithmetic)."""
    if kind == "timestamp":
        return lambda audio: hear.get_timestamp_embeddings(audio, model)[0]
    return lambda audio: hear.get_scene_embeddings(audio, model)


def deviation(module: str, got: Tensor, want: Tensor) -> float:
    """The family's distance (``TOLERANCE``) between two outputs, on the CPU in float32; NaN
    when ``got`` is not finite (so it is never within a bound)."""
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    if got.shape != want.shape:
        raise ValueError(f"shape {tuple(got.shape)}, float32 reference {tuple(want.shape)}")
    if not bool(torch.isfinite(got).all()):
        return float("nan")
    diff = (got - want).abs()
    return (diff.max() if TOLERANCE[module][0] == "max_abs" else diff.sum(-1).max()).item()


def bound(module: str, what: str) -> str:
    how, bounds = TOLERANCE[module]
    return f"{how} <= {bounds[what]:g}"


def within(module: str, what: str, value: float) -> bool:
    return value <= TOLERANCE[module][1][what]  # False for NaN


def error_text(e: BaseException) -> str:
    return f"error: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"


class Check:
    """The measurements of one run: the rows of each table as lists of cells, and whether it
    failed (an error in a float32 measurement, CUDA vs CPU parity outside tolerance, a model
    not measured)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = args.device
        self.cuda = self.device == "cuda"
        self.skipped = "" if self.cuda else (
            "--device cpu" if torch.cuda.is_available() else "no CUDA device")
        self.parity: List[List[str]] = []
        self.batch: List[List[str]] = []
        self.long: List[List[str]] = []
        self.failed = False
        self.t0 = time.perf_counter()

    def log(self, what: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f} s] {what}", file=sys.stderr, flush=True)

    def load(self, entry: Entry):
        hear = importlib.import_module(entry.module)
        return hear, hear.load_model(entry.weights) if entry.weights else hear.load_model()

    def run_parity(self, entry: Entry, hear, model) -> None:
        """CPU, then CUDA (``model`` is left there)."""
        if not self.cuda:
            self.parity.append([entry.label] + [f"skipped: {self.skipped}"] * 2 + [""] * 3)
            return
        self.log(f"{entry.label}: parity, {PARITY_CLIPS} x {self.args.clip_seconds:g} s")
        audio = tone_clips(PARITY_CLIPS, self.args.clip_seconds)
        cells, scale, ok = [], 0.0, True
        for kind in KINDS:
            try:
                want = embedder(hear, model.cpu(), kind)(audio)
                with precision("float32", "cuda"):
                    got = embedder(hear, model.cuda(), kind)(audio.cuda())
                value = deviation(entry.module, got, want)
            except Exception as e:  # reported in the table; the other measurements go on
                cells.append(error_text(e))
                ok = False
                continue
            scale = max(scale, want.abs().max().item())
            cells.append(f"{value:.3g}")
            ok &= within(entry.module, "cuda", value)
        self.failed |= not ok
        self.parity.append([entry.label, *cells, f"{scale:.3g}", bound(entry.module, "cuda"),
                            "yes" if ok else "**NO**"])

    def run_batch(self, entry: Entry, hear, model) -> None:
        a = self.args
        self.log(f"{entry.label}: batches of {a.batch} x {a.clip_seconds:g} s")
        audio = tone_clips(a.batch, a.clip_seconds).to(self.device)
        seconds = audio.numel() / SR
        for kind in KINDS:
            fn = embedder(hear, model, kind)
            reference = None
            for mode in MODES:
                row = [entry.label, kind, mode]
                if mode == "tf32" and not self.cuda:
                    self.batch.append(row + ["n/a (CUDA only)"] + [""] * 5)
                    continue
                try:
                    with precision(mode, self.device):
                        out = fn(audio).float().cpu()  # warm-up; float32 kept as the reference
                        speed = seconds / median_seconds(lambda: fn(audio), a.repeats, self.cuda)
                        start, peak = peak_memory_mb(lambda: fn(audio), self.device)
                    value = None if reference is None else deviation(entry.module, out, reference)
                except Exception as e:  # bf16 may lack a kernel: reported, fails float32 only
                    self.failed |= mode == "float32"
                    self.batch.append(row + [error_text(e)] + [""] * 5)
                    continue
                row += [f"{speed:,.0f}", f"{peak:,.0f}", f"{peak - start:,.0f}"]
                if mode == "float32":
                    reference = out
                    row += [f"(reference; max abs {out.abs().max().item():.3g})", "", ""]
                elif reference is None:
                    row += ["no float32 reference", "", ""]
                else:
                    row += [f"{value:.3g}", bound(entry.module, mode),
                            "yes" if within(entry.module, mode, value) else "**NO**"]
                self.batch.append(row)

    def run_long(self, entry: Entry, hear, model) -> None:
        self.log(f"{entry.label}: one clip of {duration(self.args.long_seconds)}")
        audio = tone_clips(1, self.args.long_seconds, seed=1).to(self.device)
        for kind in KINDS:
            fn = embedder(hear, model, kind)
            took = {}

            def run() -> None:
                start = time.perf_counter()
                fn(audio)
                if self.cuda:
                    torch.cuda.synchronize()
                took["s"] = time.perf_counter() - start

            try:
                with precision("float32", self.device):
                    fn(audio[:, :SR])  # kernels loaded, allocator warmed up
                    start, peak = peak_memory_mb(run, self.device)
            except Exception as e:
                self.failed = True
                self.long.append([entry.label, kind, error_text(e), "", "", ""])
                continue
            self.long.append([entry.label, kind, f"{took['s']:.3g}",
                              f"{self.args.long_seconds / took['s']:,.0f}", f"{peak:,.0f}",
                              f"{peak - start:,.0f}"])

    def run(self, entry: Entry) -> None:
        try:
            hear, model = self.load(entry)
            self.run_parity(entry, hear, model)
            model = model.to(self.device)
            self.run_batch(entry, hear, model)
            self.run_long(entry, hear, model)
        except Exception as e:  # e.g. a weights file that does not load: the others go on
            self.failed = True
            self.batch.append([entry.label, "", "", error_text(e)] + [""] * 5)
        finally:
            if self.cuda:
                torch.cuda.empty_cache()

    def skip(self, entry: Entry, why: str) -> None:
        self.parity.append([entry.label, why] + [""] * 4)
        self.batch.append([entry.label, "", "", why] + [""] * 5)
        self.long.append([entry.label, "", why] + [""] * 3)


def duration(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} s"


def table(header: Sequence[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def gpu_slug(name: str) -> str:
    """``NVIDIA H200`` -> ``nvidia_h200``: a file name part."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "gpu"


def environment(check: Check) -> str:
    if check.cuda:
        p = torch.cuda.get_device_properties(0)
        where = (f"GPU {p.name} ({p.total_memory / 2**30:.0f} GiB, compute capability "
                 f"{p.major}.{p.minor}); CUDA {torch.version.cuda}, cuDNN "
                 f"{torch.backends.cudnn.version()}")
    else:
        where = f"CPU, {torch.get_num_threads()} threads; CUDA part skipped: {check.skipped}"
    return f"torch {torch.__version__}; {where}"


def report(check: Check, models: List[Entry], done: int) -> str:
    """The Markdown report of the first ``done`` of ``models``."""
    a = check.args
    mode = "short" if a.short else "full"
    parity_note = (f"{PARITY_CLIPS} clips x {a.clip_seconds:g} s, float32 (TF32 off) on both; "
                   f"largest difference of CUDA from CPU.") if check.cuda else \
        f"**Skipped: {check.skipped}.** The CPU measurements below ran instead."
    if done < len(models):
        status = f"**Partial: {done} of {len(models)} models measured so far.**"
    elif check.failed:
        status = ("Status: **FAILED** (an error in a float32 measurement, CUDA vs CPU parity "
                  "outside tolerance, or a model not measured).")
    else:
        status = ("Status: ok (float32 measurements ran, parity within tolerance where "
                  "measured); TF32 and bf16 are judged in their rows.")
    return "\n".join([
        f"# Device check: {torch.cuda.get_device_name(0) if check.cuda else 'CPU'}",
        "",
        environment(check) + ".",
        f"Mode {mode}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; models: "
        f"{', '.join(f'{e.label} ({e.module})' for e in models)}. Command: "
        f"`bash scripts/device_check.sh {' '.join(a.argv)}`.",
        "",
        status,
        "",
        "## CUDA vs CPU parity",
        "",
        parity_note,
        "",
        table(["model", "timestamp", "scene", "max abs CPU output", "tolerance", "within"],
              check.parity),
        "",
        f"## Throughput and peak memory, batch {a.batch} x {a.clip_seconds:g} s on "
        f"{check.device}",
        "",
        f"x real time: audio seconds per wall second, median of {a.repeats} after a warm-up. "
        "Deviation: of this mode's output from the float32 output (same device, same batch).",
        "Peak memory of one more call, MB: " + ("peak allocated (`max_memory_allocated`)"
                                                if check.cuda else "peak resident set (RSS)")
        + ", and extra: above the start (model and audio).",
        "",
        table(["model", "embedding", "mode", "x real time", "peak MB", "extra MB",
               "deviation from float32", "tolerance", "within"], check.batch),
        "",
        f"## One clip of {duration(a.long_seconds)}, float32, on {check.device}",
        "",
        table(["model", "embedding", "seconds", "x real time", "peak MB", "extra MB"],
              check.long),
        "",
    ])


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--short", action="store_true",
                   help=f"small sizes for CI on a CPU: {SHORT} (full: {FULL})")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   choices=["cuda", "cpu"])
    p.add_argument("--models", nargs="+", default=None,
                   help="labels to check (default: every shipped weights file and logmel)")
    p.add_argument("--published", nargs="*", default=None, metavar="PATH",
                   help="published AST checkpoints to check too (original .pth or Hugging Face "
                        "directory; default: those in pretrained_models/)")
    p.add_argument("--batch", type=int, default=None, help="clips per batch")
    p.add_argument("--clip-seconds", type=float, default=None)
    p.add_argument("--long-seconds", type=float, default=None, help="length of the long clip")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--budget-seconds", type=float, default=420.0,
                   help="start no model after this many seconds (the rest are reported as not "
                        "measured): a device lent for minutes still returns a report")
    p.add_argument("--out", nargs="?", const="auto", default=None,
                   help="write the report here (no PATH: results/device_<device>.md); on CUDA "
                        "it is written there by default")
    args = p.parse_args(argv)
    for k, v in (SHORT if args.short else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device")
    return args


def out_path(args: argparse.Namespace) -> Optional[Path]:
    if args.out is None and args.device != "cuda":
        return None
    if args.out not in (None, "auto"):
        return Path(args.out)
    name = gpu_slug(torch.cuda.get_device_name(0)) if args.device == "cuda" else "cpu"
    return ROOT / "results" / f"device_{name}.md"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    models = shipped_models(published_asts() if args.published is None else args.published)
    if args.models:
        known = {e.label: e for e in models}
        unknown = sorted(set(args.models) - set(known))
        if unknown:
            raise SystemExit(f"unknown model(s) {unknown}; shipped: {sorted(known)}")
        models = [known[m] for m in args.models]
    check = Check(args)
    if not check.cuda:
        print(f"CUDA part skipped ({check.skipped}): no CUDA vs CPU parity, no TF32; measuring "
              f"on the CPU.", file=sys.stderr)
    path = out_path(args)
    for i, entry in enumerate(models):
        if time.perf_counter() - check.t0 > args.budget_seconds:
            check.failed = True
            check.skip(entry, f"not measured: the budget of {args.budget_seconds:g} s was spent")
        else:
            check.run(entry)
        if path is not None and i + 1 < len(models):  # a run cut short leaves what it measured
            write_atomic(path, report(check, models, i + 1))
    text = report(check, models, len(models))
    print(text)
    if path is not None:
        write_atomic(path, text)
        print(f"wrote {path}", file=sys.stderr)
    check.log("done" + (": FAILED (see the report's status)" if check.failed else ""))
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
