"""Benchmark hear_suite.ast: throughput and peak memory of the shipped (small) model.

    python benchmarks/bench_ast.py [--device cpu|cuda] [--weights PATH] [--repeats 3]
        [--max-windows 16] [--model-options '{"embedding": "2level+mel"}']

Prints:
- throughput: audio seconds embedded per wall second for 16 clips of 10 s, timestamp and scene
  embeddings (medians of ``--repeats`` rounds, each timing all three back to back; the ratio is
  the median of the rounds' ratios), against the reference in the same run: the way a plain
  wrapper around a fixed-length AST embeds, one clip and one window at a time (checked equal;
  one pass per column, so with ``timestamp_hop_ms`` or ``2level+mel``'s 80 ms the timestamp
  ratio counts the extra passes too);
- peak extra memory while embedding one 20-minute clip (timestamp, then scene), measured in a
  fresh process: peak RSS above the level after loading the model and the audio (CPU), or peak
  allocated above the level before (CUDA);
- the same for a 10-minute clip, to show that memory does not grow with the length;
- on the CPU, timestamp throughput with ``hear_suite.onednn``'s kernels and with ``F.linear``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (child_argv, in_fresh_process, median_ratio, onednn_line,  # noqa: E402
                     peak_extra_mb, timed_rounds)

import hear_suite.ast as ast  # noqa: E402
from hear_suite.ast.model import num_parameters  # noqa: E402

SR = 16000


@torch.no_grad()
def reference_embeddings(model, audio: torch.Tensor):
    """One clip and one window at a time through the same frontend and encoder: scene
    ``(n, dim)`` and column embeddings ``(n, columns, dim)``."""
    scenes, columns = [], []
    for clip in audio:
        clip = clip[None]
        n_cols = model.num_columns(clip.shape[1])
        cls_rows, col_rows, real = [], [], []
        for w in range(model.num_windows(clip.shape[1])):
            cls, cols = model.embed_windows(model.window_features(clip, w, w + 1)[0])
            cls_rows.append(cls[0])
            col_rows.append(cols[0])
            real.append(min(model.config.window_cols, n_cols - w * model.config.window_cols))
        weights = torch.tensor(real, dtype=torch.float32, device=audio.device) / n_cols
        scenes.append((torch.stack(cls_rows) * weights[:, None]).sum(0))
        columns.append(torch.cat(col_rows)[:n_cols])
    return torch.stack(scenes), torch.stack(columns)


def load(args: argparse.Namespace):
    return ast.load_model(args.weights, max_windows=args.max_windows,
                          **json.loads(args.model_options)).to(args.device)


def peak_memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: print the extra peak memory (MB) of one clip of ``--child-minutes``."""
    model = load(args)
    audio = torch.rand(1, int(args.child_minutes * 60 * SR),
                       generator=torch.Generator().manual_seed(0)) * 2 - 1
    audio = audio.to(args.device)
    model.scene_embeddings(audio[:, :SR])  # allocator and kernels warmed up
    start = time.perf_counter()
    extra = peak_extra_mb(lambda: (model.timestamp_embeddings(audio),
                                   model.scene_embeddings(audio)), args.device)
    print(json.dumps({"extra_mb": extra, "seconds": time.perf_counter() - start}))


def peak_memory(args: argparse.Namespace, minutes: float) -> dict:
    argv = child_argv(__file__, "--child-minutes", str(minutes), device=args.device,
                      weights=args.weights)
    return in_fresh_process(argv + ["--max-windows", str(args.max_windows),
                                    "--model-options", args.model_options])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--weights", default=None, help="checkpoint (default: shipped weights)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-windows", type=int, default=16)
    p.add_argument("--model-options", default="{}", help="load_model options, JSON")
    p.add_argument("--child-minutes", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_minutes is not None:
        return peak_memory_child(args)
    model = load(args)
    c = model.config
    print(f"hear_suite.ast {c.pos_embed}: {c.depth} x {c.dim}, {num_parameters(model.encoder):,} "
          f"parameters, {c.window_frames}-frame windows, {model.embedding}, timestamps every "
          f"{model.hop_ms:g} ms; {args.device}, {torch.get_num_threads()} threads, max_windows "
          f"{args.max_windows}")
    audio = (torch.rand(16, 10 * SR, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    audio = audio.to(args.device)
    ref_scene, ref_cols = reference_embeddings(model, audio)
    scene, cols = model.embed(audio)
    diff = max((scene - ref_scene).abs().max().item(), (cols - ref_cols).abs().max().item())
    print(f"max |hear_suite - one window at a time| over 16 x 10 s: {diff:.2e}")
    *walls, ref_walls = timed_rounds([lambda: model.timestamp_embeddings(audio),
                                      lambda: model.scene_embeddings(audio),
                                      lambda: reference_embeddings(model, audio)],
                                     args.repeats, audio.is_cuda)
    seconds = audio.numel() / SR
    for kind, wall in zip(("timestamp", "scene"), walls):
        print(f"{kind:>9}: hear_suite {seconds / statistics.median(wall):8.1f} audio s / wall s, "
              f"reference {seconds / statistics.median(ref_walls):8.1f}, ratio "
              f"{median_ratio(ref_walls, wall):.2f} (16 clips x 10 s)")
    if args.device == "cpu":
        print(onednn_line(lambda: model.timestamp_embeddings(audio), audio.numel() / SR,
                          args.repeats, "timestamp, 16 x 10 s:"))
    for minutes in (10, 20):
        r = peak_memory(args, minutes)
        print(f"{minutes}-minute clip (timestamp + scene): peak extra memory "
              f"{r['extra_mb']:.0f} MB, {r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
