"""Benchmark ``hear-suite embed`` (``hear_suite.embed.embed_files``) against the loop a user would
write: read each file, resample it, call the module's two functions, save three arrays.

    python benchmarks/bench_embed.py [--module hear_suite.kwmlp] [--short 1000] [--hours 2]
        [--workers 1] [--repeats 2]

Prints, with scene and timestamp embeddings of every file:
- ``--short`` files of 1 s at 16 kHz (the keyword-spotting case): x real time of ``embed_files``
  and of the loop, in interleaved rounds (medians; the ratio is the median of the rounds'
  ratios), each round into a fresh output folder;
- ``--hours`` of long files (30-minute files at 22.05 kHz, so every block is resampled):
  x real time of ``embed_files`` (streamed);
- peak extra memory (peak RSS above the level after loading the model) of ``embed_files`` on
  one 15-minute and one 60-minute file, each in a fresh process, and the ratio (flat: about 1),
  beside the loop's peak on the 60-minute file.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import in_fresh_process, median_ratio, peak_extra_mb, timed_rounds  # noqa: E402

from hear_suite.audio import resample  # noqa: E402
from hear_suite.embed import embed_files  # noqa: E402
from hear_suite.embed.run import load_module  # noqa: E402


def write_tone(path: Path, seconds: float, rate: int, seed: int) -> None:
    """A tone in noise, written in one-minute blocks (16-bit PCM)."""
    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as f:
        done = 0
        while done < seconds:
            n = int(min(60.0, seconds - done) * rate)
            t = (np.arange(n) + int(done * rate)) / rate
            f.write(0.3 * np.sin(2 * np.pi * (200 + seed % 300) * t)
                    + 0.05 * rng.standard_normal(n))
            done += n / rate


def naive_loop(files, out: Path, hear, model) -> None:
    """What a user writes without ``hear-suite embed``: one file at a time, whole."""
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = resample(audio.mean(axis=1), rate, model.sample_rate)
        x = torch.from_numpy(audio)[None]
        with torch.no_grad():
            scene = hear.get_scene_embeddings(x, model)
            emb, ts = hear.get_timestamp_embeddings(x, model)
        np.save(out / f"{path.name}.scene.npy", scene[0].numpy())
        np.save(out / f"{path.name}.timestamp.npy", emb[0].numpy())
        np.save(out / f"{path.name}.timestamps_ms.npy", ts[0].numpy())


def memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: peak extra memory of ``embed_files`` (or the loop) on one file."""
    path, out = Path(args.child_file), Path(args.child_out)
    hear, model = load_module(args.module, None, {}, "cpu")
    if args.child_loop:
        run = lambda: naive_loop([path], out, hear, model)  # noqa: E731
    else:
        run = lambda: embed_files([str(path)], out, module=args.module, progress=False,  # noqa
                                  workers=0)
    start = time.perf_counter()
    extra = peak_extra_mb(run, "cpu")
    print(json.dumps({"extra_mb": extra, "seconds": time.perf_counter() - start}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--module", default="hear_suite.kwmlp")
    p.add_argument("--short", type=int, default=1000, help="number of 1 s files")
    p.add_argument("--hours", type=float, default=2.0, help="hours of 30-minute files")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--child-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-loop", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_file:
        return memory_child(args)
    print(f"{args.module}, scene + timestamp embeddings; CPU, {torch.get_num_threads()} threads, "
          f"--workers {args.workers}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "short").mkdir()
        short = [tmp / "short" / f"clip{i:05d}.wav" for i in range(args.short)]
        for i, f in enumerate(short):
            write_tone(f, 1.0, 16000, i)
        hear, model = load_module(args.module, None, {}, "cpu")
        rounds = iter(range(10 ** 6))

        def tool() -> None:
            embed_files([str(tmp / "short")], tmp / f"tool{next(rounds)}", module=args.module,
                        workers=args.workers, progress=False)

        def loop() -> None:
            naive_loop(short, tmp / f"loop{next(rounds)}", hear, model)

        ours, ref = timed_rounds([tool, loop], args.repeats, cuda=False)
        seconds = float(args.short)
        print(f"{args.short} files x 1 s: hear-suite embed "
              f"{seconds / statistics.median(ours):6.0f}x real time, per-file loop "
              f"{seconds / statistics.median(ref):6.0f}x, ratio "
              f"{median_ratio(ref, ours):.2f}")
        (tmp / "long").mkdir()
        n_long = max(1, round(args.hours * 2))
        for i in range(n_long):
            write_tone(tmp / "long" / f"long{i}.wav", 1800.0, 22050, 1000 + i)
        start = time.perf_counter()
        rows = embed_files([str(tmp / "long")], tmp / "long_out", module=args.module,
                           workers=args.workers, progress=False)
        wall = time.perf_counter() - start
        assert all(r["status"] == "embedded" for r in rows), rows
        print(f"{n_long} files x 30 min at 22.05 kHz ({n_long / 2:g} h): hear-suite embed "
              f"{n_long * 1800 / wall:6.0f}x real time (streamed, resampled block by block)")
        peaks = {}
        for minutes in (15, 60):
            f = tmp / f"mem{minutes}.wav"
            write_tone(f, 60.0 * minutes, 22050, minutes)
            peaks[minutes] = in_fresh_process([__file__, "--module", args.module, "--child-file",
                                               str(f), "--child-out", str(tmp / f"m{minutes}")])
        loop60 = in_fresh_process([__file__, "--module", args.module, "--child-file",
                                   str(tmp / "mem60.wav"), "--child-out", str(tmp / "l60"),
                                   "--child-loop"])
        print(f"peak extra memory: hear-suite embed {peaks[15]['extra_mb']:.0f} MB (15 min), "
              f"{peaks[60]['extra_mb']:.0f} MB (60 min), ratio "
              f"{peaks[60]['extra_mb'] / peaks[15]['extra_mb']:.2f}; per-file loop "
              f"{loop60['extra_mb']:.0f} MB (60 min)")


if __name__ == "__main__":
    main()
