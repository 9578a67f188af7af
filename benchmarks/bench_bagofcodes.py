"""Benchmark hear_suite.bagofcodes: throughput, the cumulative-sum windows against direct
per-window counting, and peak memory on a 20-minute clip.

    python benchmarks/bench_bagofcodes.py [--device cpu|cuda] [--weights PATH] [--repeats 3]

Prints, in one run:
- throughput of scene and timestamp embeddings, 8 clips of 10 s, and of the frontend alone (the
  log-mel spectrogram every embedding needs): audio seconds per wall-clock second, and per CPU
  second of this process (with N threads on an idle machine, wall ~ CPU / N);
- the timestamp windows by cumulative sums against the reference that cuts out and counts every
  window on its own grid (same codes, checked equal), on one 10 s clip with 1 s and 4 s windows;
- peak extra memory of one 20-minute clip (scene, then timestamps), each in a fresh process: peak
  RSS above the level after loading the model and the audio (CPU), peak allocated (CUDA). The
  timestamp output itself, ``(1, 24001, 1024)`` float32, is 98 MB of it;
- on the CPU, timestamp throughput with ``hear_suite.onednn``'s kernels and with ``F.linear``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (child_argv, in_fresh_process, onednn_line, peak_extra_mb,  # noqa: E402
                     timed)

import hear_suite.bagofcodes as boc  # noqa: E402
from hear_suite.bagofcodes.embedder import BagOfCodesEmbedder  # noqa: E402
from hear_suite.bagofcodes.io import load_bagofcodes  # noqa: E402

SR = 16000


def audio_batch(n: int, seconds: float, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * SR)) / SR
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t * (1 + 0.1 * torch.sin(t)))
    return (tone + 0.1 * (torch.rand(n, len(t), generator=g) * 2 - 1)).to(device)


def peak_memory_child(kind: str, weights, device: str) -> None:
    model = boc.load_model(weights).to(device)
    audio = audio_batch(1, 20 * 60, device)
    model.scene_embeddings(audio[:, :SR])
    run = model.scene_embeddings if kind == "scene" else model.timestamp_embeddings
    print(json.dumps({"extra_mb": peak_extra_mb(lambda: run(audio), device)}))


def peak_memory(kind: str, weights, device: str) -> float:
    argv = child_argv(__file__, "--child-memory", kind, device=device, weights=weights)
    return in_fresh_process(argv)["extra_mb"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--weights", default=None, help="checkpoint (default: shipped weights)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child-memory", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_memory:
        return peak_memory_child(args.child_memory, args.weights, args.device)

    cuda = args.device == "cuda"
    model = boc.load_model(args.weights).to(args.device)
    c = model.config
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"model width {c.width}, depth {c.depth}, F {c.compression}, D {c.codebook_size}")
    audio = audio_batch(8, 10, args.device)
    seconds = audio.shape[0] * audio.shape[1] / SR
    n_frames = model.num_frames(audio.shape[1])
    for name, fn in [("frontend only", lambda: model.frames(audio, 0, n_frames)),
                     ("scene", lambda: model.scene_embeddings(audio)),
                     ("timestamp", lambda: model.timestamp_embeddings(audio))]:
        t, cpu = timed(fn, args.repeats, cuda)
        print(f"throughput {name:13s} (8 x 10 s): {seconds / t:7.0f}x real time "
              f"(wall clock); {seconds / cpu:7.0f} audio s per CPU s")

    if not cuda:
        print(onednn_line(lambda: model.timestamp_embeddings(audio), seconds, args.repeats,
                          "timestamp, 8 x 10 s:"))

    one = audio[:1]
    for window_ms in (1000, 4000):
        emb = BagOfCodesEmbedder(load_bagofcodes(args.weights),
                                 timestamp_window_ms=window_ms).to(args.device)
        x = emb.frames(one, 0, emb.num_frames(one.shape[1]) + emb.window_frames)
        starts = emb.window_starts(one.shape[1])
        same = torch.equal(emb.window_histograms(x, starts),
                           emb.direct_window_histograms(x, starts))
        _, fast = timed(lambda: emb.window_histograms(x, starts), args.repeats, cuda)
        _, direct = timed(lambda: emb.direct_window_histograms(x, starts), 1, cuda)
        print(f"windows of {window_ms / 1000:g} s over 10 s ({len(starts)} timestamps), from the "
              f"spectrogram, CPU time: cumulative sums {fast * 1000:6.0f} ms, direct per-window "
              f"counting {direct * 1000:6.0f} ms, ratio {direct / fast:5.1f}x, identical: {same}")

    for kind in ("scene", "timestamp"):
        print(f"peak extra memory, one 20-minute clip, {kind:9s}: "
              f"{peak_memory(kind, args.weights, args.device):.0f} MB")


if __name__ == "__main__":
    main()
