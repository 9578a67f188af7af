"""Benchmark hear_suite.kwmlp against the original-style code path (benchmarks/original_style.py).

    python benchmarks/bench_kwmlp.py [--device cpu|cuda] [--weights PATH] [--repeats 5]

Prints, for both implementations in the same run:
- throughput: audio seconds embedded per wall second, 16 clips of 10 s, timestamp and scene
  (medians of ``--repeats`` rounds, each round timing both implementations back to back), and
  the ratio: the median of the rounds' ratios;
- peak extra memory while embedding one 20-minute clip (each measured in a fresh process: peak
  RSS above the level after loading the model and the audio on CPU, peak allocated on CUDA);
- the largest difference between the two outputs (they must agree within 1e-4);
- a roofline line: the FLOPs per audio second of the timestamp path against those measured, and
  the peak of a large float32 matrix product through the same kernels (``hear_suite.onednn``);
- on the CPU, hear_suite's timestamp throughput with those kernels and with ``F.linear``.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import (child_argv, in_fresh_process, median_ratio, onednn_set,  # noqa: E402
                     onednn_line, peak_extra_mb, timed, timed_rounds)
from original_style import OriginalStyleKWMLP  # noqa: E402

import hear_suite.kwmlp as kwmlp  # noqa: E402
from hear_suite import onednn  # noqa: E402
from hear_suite.audio import num_chunks  # noqa: E402
from hear_suite.kwmlp import original  # noqa: E402
from hear_suite.kwmlp.model import KWMLPConfig  # noqa: E402


def build(impl: str, weights, device: str):
    model = kwmlp.load_model(weights).to(device)
    if impl == "hear_suite":
        return model
    sd = original.to_original(model.encoder.state_dict(), model.config)["model_state_dict"]
    return OriginalStyleKWMLP({k: v.to(device) for k, v in sd.items()}, model.frontend.nnaudio)


def encoder_flops(c: KWMLPConfig) -> float:
    """Floating point operations (a multiply-add is 2) of one chunk through the encoder's matrix
    products: the patch embedding and, per block, proj_in, token mixing and proj_out."""
    t, d, ff = c.num_frames, c.dim, c.dim * c.ff_mult
    block = 2 * t * d * ff + 2 * t * t * (ff // 2) + 2 * t * (ff // 2) * d
    return 2 * t * c.n_mfcc * d + c.depth * block


def frontend_flops(c: KWMLPConfig) -> float:
    """The same for the MFCC of one chunk: real FFT (counted as 2.5 n log2 n), window, squares,
    mel filters, DCT."""
    bins = c.n_fft // 2 + 1
    return c.num_frames * (2.5 * c.n_fft * math.log2(c.n_fft) + c.n_fft + 2 * bins
                           + 2 * (2 * bins) * c.n_mels + 2 * c.n_mels * c.n_mfcc)


def flops_per_chunk(c: KWMLPConfig) -> float:
    """Frontend and encoder of one chunk; norms, GELUs and products are left out."""
    return frontend_flops(c) + encoder_flops(c)


def matmul_roof(device: str, repeats: int) -> float:
    """GFLOP/s of a (4096 x 1024) x (1024 x 1024) float32 product through ``onednn.linear``."""
    g = torch.Generator().manual_seed(0)
    x, w = (torch.randn(shape, generator=g).to(device) for shape in ((4096, 1024), (1024, 1024)))
    wall, _ = timed(lambda: onednn.linear(x, w), repeats, x.is_cuda)
    return 2 * 4096 * 1024 * 1024 / wall / 1e9


def peak_memory_child(impl: str, weights, device: str) -> None:
    """Run in a fresh process: print the extra peak memory (MB) of one 20-minute clip."""
    model = build(impl, weights, device)
    audio = (torch.rand(1, 20 * 60 * 16000, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    audio = audio.to(device)
    model.scene_embeddings(audio[:, :16000])  # allocator and kernels warmed up
    extra = peak_extra_mb(lambda: (model.timestamp_embeddings(audio),
                                   model.scene_embeddings(audio)), device)
    print(json.dumps({"extra_mb": extra}))


def peak_memory(impl: str, weights, device: str) -> float:
    argv = child_argv(__file__, "--child-memory", impl, device=device, weights=weights)
    return in_fresh_process(argv)["extra_mb"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--weights", default=None, help="checkpoint (default: shipped weights)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--child-memory", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_memory:
        return peak_memory_child(args.child_memory, args.weights, args.device)

    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    audio = (torch.rand(16, 10 * 16000, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    audio = audio.to(args.device)
    ours, ref = (build(i, args.weights, args.device) for i in ("hear_suite", "reference"))
    diff = max((ours.scene_embeddings(audio) - ref.scene_embeddings(audio)).abs().max().item(),
               (ours.timestamp_embeddings(audio)[0] - ref.timestamp_embeddings(audio)[0])
               .abs().max().item())
    print(f"max |hear_suite - reference| over 16 x 10 s: {diff:.2e}")
    seconds, speed = audio.numel() / 16000, {}
    for kind in ("timestamp", "scene"):
        fns = [getattr(m, f"{kind}_embeddings") for m in (ours, ref)]
        a, b = timed_rounds([lambda fn=fn: fn(audio) for fn in fns], args.repeats,
                            audio.is_cuda)
        speed[kind] = seconds / statistics.median(a)
        print(f"throughput {kind:9s} (16 x 10 s): hear_suite {speed[kind]:7.0f}x real time, "
              f"reference {seconds / statistics.median(b):7.0f}x, ratio {median_ratio(b, a):.2f}")
    ts_speed = speed["timestamp"]
    config = ours.config
    chunks_per_second = num_chunks(audio.shape[1] + 320, config.chunk_samples) / 10
    flops = flops_per_chunk(config) * chunks_per_second
    roof = matmul_roof(args.device, args.repeats)
    with onednn_set(True):
        onednn_roof = matmul_roof(args.device, args.repeats)
    with onednn_set(False):
        plain_roof = matmul_roof(args.device, args.repeats)
    print(f"roofline: {flops_per_chunk(config) / 1e6:.1f} MFLOP per 1-s chunk, "
          f"{chunks_per_second:.1f} chunks per audio second (10 s clips) = {flops / 1e6:.0f} "
          f"MFLOP per audio second; at {ts_speed:.0f}x real time {flops * ts_speed / 1e9:.0f} "
          f"GFLOP/s, {100 * flops * ts_speed / 1e9 / roof:.0f}% of the {roof:.0f} GFLOP/s of a "
          f"4096x1024x1024 float32 product (default here: "
          f"{'oneDNN' if onednn.available() and onednn.ENABLED else 'F.linear'}; oneDNN "
          f"{onednn_roof:.0f}, F.linear {plain_roof:.0f} GFLOP/s)")
    if args.device == "cpu":
        print(onednn_line(lambda: ours.timestamp_embeddings(audio), audio.numel() / 16000,
                          args.repeats, "hear_suite timestamp, 16 x 10 s:"))
    a = peak_memory("hear_suite", args.weights, args.device)
    b = peak_memory("reference", args.weights, args.device)
    print(f"peak extra memory, one 20-minute clip (timestamp + scene): hear_suite {a:.0f} MB, "
          f"reference {b:.0f} MB, ratio {a / max(b, 1e-9):.2f}")


if __name__ == "__main__":
    main()
