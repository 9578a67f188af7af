"""What the benchmarks share: timing with warm-up and CUDA sync, peak extra memory of one call,
and running a measurement in a fresh process (so one peak does not hide another)."""
from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time
from typing import Callable, Iterator, List, Sequence, Tuple

import torch


def seconds_of(fn: Callable[[], object], cuda: bool) -> float:
    """Wall-clock seconds of one call of ``fn``, between two ``torch.cuda.synchronize()`` on
    CUDA (so queued kernels are counted)."""
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed(fn: Callable[[], object], repeats: int, cuda: bool) -> Tuple[float, float]:
    """Best wall-clock seconds over ``repeats`` runs (after one warm-up) and the process CPU
    seconds of that run; on a shared machine the CPU time is the steadier figure."""
    fn()
    best, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start_cpu = time.process_time()
        wall = seconds_of(fn, cuda)
        if wall < best:
            best, cpu = wall, time.process_time() - start_cpu
    return best, cpu


@contextlib.contextmanager
def onednn_set(enabled: bool) -> Iterator[None]:
    """``hear_suite.onednn``'s kernels on or off while inside (as ``HEAR_SUITE_ONEDNN=1`` / ``0``;
    off: the same code path with PyTorch's default matrix products, ``F.linear``)."""
    from hear_suite import onednn

    before, onednn.ENABLED = onednn.ENABLED, enabled
    try:
        yield
    finally:
        onednn.ENABLED = before


def onednn_line(run: Callable[[], object], audio_seconds: float, repeats: int,
                label: str) -> str:
    """One benchmark line: x real time of ``run()`` (embedding ``audio_seconds`` of audio) with and
    without ``hear_suite.onednn`` (medians of interleaved rounds) and the median ratio. The
    default on this CPU is one of the two (oneDNN where it has AVX-512)."""
    def with_onednn() -> None:
        with onednn_set(True):
            run()

    def without() -> None:
        with onednn_set(False):
            run()

    fast, slow = timed_rounds([with_onednn, without], repeats, cuda=False)
    return (f"{label} with oneDNN kernels {audio_seconds / statistics.median(fast):7.0f}x real "
            f"time, with F.linear (HEAR_SUITE_ONEDNN=0) "
            f"{audio_seconds / statistics.median(slow):7.0f}x, ratio {median_ratio(slow, fast):.2f}")


def timed_rounds(fns: Sequence[Callable[[], object]], repeats: int,
                 cuda: bool) -> List[List[float]]:
    """Wall-clock seconds of each of ``fns`` in each of ``repeats`` rounds (after one warm-up
    round): ``walls[i][r]``. Every round runs each function once, one after the other, so a slow
    spell of a shared machine falls on all of them alike rather than on whichever was being
    timed during it."""
    walls: List[List[float]] = [[] for _ in fns]
    for r in range(repeats + 1):
        for i, fn in enumerate(fns):
            wall = seconds_of(fn, cuda)
            if r:
                walls[i].append(wall)
    return walls


def median_ratio(slow: Sequence[float], fast: Sequence[float]) -> float:
    """Median over rounds of ``slow[r] / fast[r]``: the speed-up, robust to one lucky or unlucky
    round on either side (a best-of ratio is not)."""
    return statistics.median(s / f for s, f in zip(slow, fast))


def median_seconds(fn: Callable[[], object], repeats: int, cuda: bool) -> float:
    """Median wall-clock seconds of ``repeats`` runs of ``fn`` (:func:`seconds_of`). No warm-up:
    the caller runs ``fn`` once first and keeps its output."""
    return statistics.median(seconds_of(fn, cuda) for _ in range(repeats))


def _vm_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_memory_mb(run: Callable[[], object], device: str) -> Tuple[float, float]:
    """``(at start, peak)`` memory in MB around ``run()``: allocated and peak allocated on CUDA
    (the peak statistics reset first), RSS and peak RSS on the CPU (Linux; the high-water mark
    is reset first)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return base / 2**20, torch.cuda.max_memory_allocated() / 2**20
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak RSS (VmHWM) to now
        f.write("5")
    base_kb = _vm_kb("VmRSS")
    run()
    return base_kb / 1024, _vm_kb("VmHWM") / 1024


def peak_extra_mb(run: Callable[[], object], device: str) -> float:
    """Peak memory (MB) that ``run()`` adds to what is allocated when it starts."""
    base, peak = peak_memory_mb(run, device)
    return peak - base


def child_argv(script: str, flag: str, value: str, *, device: str, weights) -> List[str]:
    """``script flag value --device D [--weights W]``: a benchmark re-running itself as a child."""
    return [script, flag, value, "--device", device] + (["--weights", str(weights)] if weights
                                                         else [])


def in_fresh_process(argv: List[str]) -> dict:
    """Run ``python *argv``; return the JSON object on the last line of its output."""
    out = subprocess.run([sys.executable, *argv], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
