"""Benchmark hear_suite.kwmlp against the original-style code path (benchmarks/original_style.py).

    python benchmarks/bench_kwmlp.py [--device cpu|cuda] [--weights PATH] [--repeats 5]

Prints, for both implementations in the same run:
- throughput: audio seconds embedded per wall second, 16 clips of 10 s, timestamp and scene;
- peak extra memory while embedding one 20-minute clip (each measured in a fresh process: peak
  RSS above the level after loading the model and the audio on CPU, peak allocated on CUDA);
- the largest difference between the two outputs (they must agree within 1e-4).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import child_argv, in_fresh_process, peak_extra_mb, timed  # noqa: E402
from original_style import OriginalStyleKWMLP  # noqa: E402

import hear_suite.kwmlp as kwmlp  # noqa: E402
from hear_suite.kwmlp import original  # noqa: E402


def build(impl: str, weights, device: str):
    model = kwmlp.load_model(weights).to(device)
    if impl == "hear_suite":
        return model
    sd = original.to_original(model.encoder.state_dict(), model.config)["model_state_dict"]
    return OriginalStyleKWMLP({k: v.to(device) for k, v in sd.items()}, model.frontend.nnaudio)


def throughput(model, audio: torch.Tensor, kind: str, repeats: int) -> float:
    fn = model.timestamp_embeddings if kind == "timestamp" else model.scene_embeddings
    wall, _ = timed(lambda: fn(audio), repeats, audio.is_cuda)
    return audio.shape[0] * audio.shape[1] / 16000 / wall


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
    p.add_argument("--repeats", type=int, default=5)
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
    for kind in ("timestamp", "scene"):
        a = throughput(ours, audio, kind, args.repeats)
        b = throughput(ref, audio, kind, args.repeats)
        print(f"throughput {kind:9s} (16 x 10 s): hear_suite {a:7.0f}x real time, "
              f"reference {b:7.0f}x, ratio {a / b:.2f}")
    a = peak_memory("hear_suite", args.weights, args.device)
    b = peak_memory("reference", args.weights, args.device)
    print(f"peak extra memory, one 20-minute clip (timestamp + scene): hear_suite {a:.0f} MB, "
          f"reference {b:.0f} MB, ratio {a / max(b, 1e-9):.2f}")


if __name__ == "__main__":
    main()
