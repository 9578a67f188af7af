"""What the benchmarks share: timing with warm-up and CUDA sync, peak extra memory of one call,
and running a measurement in a fresh process (so one peak does not hide another)."""
from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time
from typing import Callable, Iterator, List, Tuple

import torch


def timed(fn: Callable[[], object], repeats: int, cuda: bool) -> Tuple[float, float]:
    """Best wall-clock seconds over ``repeats`` runs (after one warm-up) and the process CPU
    seconds of that run; on a shared machine the CPU time is the steadier figure."""
    fn()
    best, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        if wall < best:
            best, cpu = wall, time.process_time() - start_cpu
    return best, cpu


@contextlib.contextmanager
def onednn_disabled() -> Iterator[None]:
    """``F.linear`` instead of ``hear_suite.onednn``'s kernels while inside (as with
    ``HEAR_SUITE_ONEDNN=0``): the same code path with PyTorch's default matrix products."""
    from hear_suite import onednn

    before, onednn.ENABLED = onednn.ENABLED, False
    try:
        yield
    finally:
        onednn.ENABLED = before


def onednn_line(speed: Callable[[], float], label: str) -> str:
    """One benchmark line: ``speed()`` (x real time) with and without ``hear_suite.onednn``."""
    with_onednn = speed()
    with onednn_disabled():
        without = speed()
    return (f"{label} with oneDNN kernels {with_onednn:7.0f}x real time, with F.linear "
            f"(HEAR_SUITE_ONEDNN=0) {without:7.0f}x, ratio {with_onednn / without:.2f}")


def median_seconds(fn: Callable[[], object], repeats: int, cuda: bool) -> float:
    """Median wall-clock seconds of ``repeats`` runs of ``fn``, each between two
    ``torch.cuda.synchronize()`` on CUDA (so queued kernels are counted). No warm-up: the caller
    runs ``fn`` once first and keeps its output."""
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
