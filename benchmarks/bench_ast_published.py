"""Benchmark the published AST (ViT-Base, AudioSet layout) through hear_suite.ast against what its
users run instead: transformers' ASTFeatureExtractor + ASTForAudioClassification.

    python benchmarks/bench_ast_published.py [--model PATH] [--repeats 2] [--max-windows 16]

``--model``: a Hugging Face AST directory or an original ``audioset_*.pth`` (then converted to a
Hugging Face directory for transformers). Without it, a ViT-Base AST with random weights in
the layout of ``audioset_10_10_0.4593.pth`` (12 x 768, 1,024 frames, stride 10, 527 classes),
built by transformers offline: the same shapes, so the same cost.

Prints:
- parity: the largest difference between hear_suite's scene embeddings and transformers'
  ``pooler_output`` on the same windows, relative to the largest value;
- throughput (x real time) of scene embeddings for 16 clips of 10 s and 4 clips of 60 s, both
  sides in interleaved rounds (medians; the ratio is the median of the rounds' ratios), same
  threads. The transformers side is the way its users embed: the extractor on a list of numpy
  clips, the model on batches of ``--max-windows``; a 60 s clip is cut into hear_suite's
  10.24 s windows first (the extractor alone would keep the first 10.24 s), and the windows'
  pooler outputs are averaged as hear_suite's ``cls`` scene embedding does;
- a roofline line: FLOPs per window and the rate hear_suite reaches, against the rate of a
  product of the MLP's shape through F.linear and through oneDNN;
- seconds and peak extra memory of one 10-minute and one 20-minute clip (timestamp + scene,
  in a fresh process each).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (child_argv, in_fresh_process, median_ratio, onednn_set,  # noqa: E402
                     seconds_of, timed_rounds)

import hear_suite.ast as ast  # noqa: E402
from hear_suite.ast.model import num_parameters  # noqa: E402

SR = 16000


def random_audioset_ast(folder: Path) -> Path:
    """A random ViT-Base ASTForAudioClassification of the AudioSet layout, saved in ``folder``."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    ASTForAudioClassification(ASTConfig(num_labels=527)).save_pretrained(folder)
    ASTFeatureExtractor().save_pretrained(folder)
    return folder


def huggingface_dir(model: str | None, tmp: Path) -> Path:
    if model is None:
        return random_audioset_ast(tmp / "random")
    if Path(model).is_dir():
        return Path(model)
    from hear_suite.ast.io import export

    export(model, tmp / "converted", "huggingface")
    return tmp / "converted"


class TransformersScene:
    """Scene embeddings the transformers way, on hear_suite's windows: ``(n, L)`` numpy ->
    ``(n, 768)``."""

    def __init__(self, folder: Path, embedder, batch: int) -> None:
        from transformers import ASTFeatureExtractor, ASTForAudioClassification

        self.extractor = ASTFeatureExtractor.from_pretrained(folder)
        self.model = ASTForAudioClassification.from_pretrained(folder).eval()
        self.embedder, self.batch = embedder, batch

    @torch.no_grad()
    def __call__(self, audio: np.ndarray) -> torch.Tensor:
        e = self.embedder
        n, length = audio.shape
        n_win, n_cols = e.num_windows(length), e.num_columns(length)
        segments = [clip[w * e.window_step: w * e.window_step + e.window_samples]
                    for clip in audio for w in range(n_win)]
        pooled = []
        for i in range(0, len(segments), self.batch):
            inputs = self.extractor(segments[i:i + self.batch], sampling_rate=SR,
                                    return_tensors="pt")
            pooled.append(self.model.audio_spectrogram_transformer(**inputs).pooler_output)
        pooled = torch.cat(pooled).reshape(n, n_win, -1)
        wc = e.config.window_cols
        real = (n_cols - wc * torch.arange(n_win)).clamp(max=wc).float() / n_cols
        return (pooled * real[None, :, None]).sum(1)


def window_gflop(c) -> float:
    """Matrix-product GFLOP of one window through the encoder (patches, blocks, no head)."""
    tokens = c.num_prefix + c.grid()[0] * c.grid()[1]
    per_block = 2 * tokens * c.dim * (4 * c.dim + 2 * c.ff_dim) + 4 * tokens * tokens * c.dim
    patches = 2 * (tokens - c.num_prefix) * c.dim * c.patch_freq * c.patch_time
    return (c.depth * per_block + patches) / 1e9


def product_rate(rows: int, c, repeats: int) -> float:
    """GFLOP/s of a ``(rows x dim) x (dim x ff_dim)`` float32 product (the MLP's first layer)."""
    from hear_suite import onednn

    x, w = torch.randn(rows, c.dim), torch.randn(c.ff_dim, c.dim)
    onednn.linear(x, w)
    best = min(seconds_of(lambda: onednn.linear(x, w), False) for _ in range(repeats))
    return 2 * rows * c.dim * c.ff_dim / best / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="published AST (default: random ViT-Base)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-windows", type=int, default=16)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = huggingface_dir(args.model, Path(tmp))
        args.model = args.model or str(folder)
        ours = ast.load_model(str(folder), max_windows=args.max_windows)
        theirs = TransformersScene(folder, ours, args.max_windows)
        c = ours.config
        print(f"published AST: {c.depth} x {c.dim}, {num_parameters(ours.encoder):,} parameters, "
              f"{c.window_frames}-frame windows, stride {c.stride_freq}/{c.stride_time}; CPU, "
              f"{torch.get_num_threads()} threads, batches of {args.max_windows} windows")
        rng = np.random.default_rng(0)
        for n, seconds in ((16, 10), (4, 60)):
            audio = (0.3 * rng.uniform(-1, 1, (n, seconds * SR))).astype(np.float32)
            tensor = torch.from_numpy(audio)
            want, got = theirs(audio), ast.get_scene_embeddings(tensor, ours)
            parity = float((got - want).abs().max() / want.abs().max())
            mine, ref = timed_rounds([lambda: ast.get_scene_embeddings(tensor, ours),
                                      lambda: theirs(audio)], args.repeats, cuda=False)
            total = n * seconds
            print(f"{n} x {seconds} s: hear_suite {total / statistics.median(mine):5.1f}x real "
                  f"time, transformers {total / statistics.median(ref):5.1f}x, ratio "
                  f"{median_ratio(ref, mine):.2f}; scene vs pooler_output max rel. difference "
                  f"{parity:.1e}")
            if seconds == 10:
                windows = ours.num_windows(audio.shape[1]) * n
                rate = window_gflop(c) * windows / statistics.median(mine)
        rows = args.max_windows * (c.num_prefix + c.grid()[0] * c.grid()[1])
        with onednn_set(False):
            plain = product_rate(rows, c, 3)
        with onednn_set(True):
            fused = product_rate(rows, c, 3)
        print(f"roofline: {window_gflop(c):.0f} GFLOP per window; hear_suite at {rate:.0f} GFLOP/s "
              f"(16 x 10 s), where one {rows} x {c.dim} x {c.ff_dim} product runs at {plain:.0f} "
              f"GFLOP/s through F.linear and {fused:.0f} through oneDNN "
              f"(CPU capability {torch.backends.cpu.get_cpu_capability()})")
        for minutes in (10, 20):  # bench_ast.py's measurement of one long clip, on this model
            r = in_fresh_process(child_argv(str(Path(__file__).with_name("bench_ast.py")),
                                            "--child-minutes", str(minutes), device="cpu",
                                            weights=args.model)
                                 + ["--max-windows", str(args.max_windows)])
            print(f"{minutes}-minute clip (timestamp + scene): {r['seconds']:.0f} s "
                  f"({minutes * 60 / r['seconds']:.1f}x real time), peak extra memory "
                  f"{r['extra_mb']:.0f} MB")


if __name__ == "__main__":
    main()
