"""``hear-suite make-corpus CORPUS --out DIR``: synthesise a corpus as a HEAR task.

``--out`` is a HEAR tasks directory; the task is written to ``DIR/<task_name>-v1-full/``.

    hear-suite make-corpus keywords --out /work/data/keywords            # ~3400 clips
    hear-suite make-corpus keywords --out /tmp/kw --speakers 10 --words yes,no,up
    hear-suite make-corpus general --out /work/data/general --clips 1200   # bag-of-codes corpus
    hear-suite make-corpus real --out /work/data/real [--scale 1] [--tasks real_drum_pieces,...]

``keywords``: spoken words, Speech Commands style (:mod:`hear_suite.corpora.keywords`).
``general``: speech, music, noises and events mixed into 1-10 s clips, multilabel
(:mod:`hear_suite.corpora.general`).
``real``: four tasks of real recordings from Debian packages, split by source, plus their
multilabel union and a train/valid wav pool (:mod:`hear_suite.corpora.real`).
``union``: scene tasks merged into one, labels prefixed by label set
(:mod:`hear_suite.corpora.union`).
"""
from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

CORPORA = ("keywords", "general", "real", "union")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", choices=CORPORA, help="which corpus to build")
    parser.add_argument("--out", required=True, type=Path,
                        help="tasks directory; the task goes to OUT/<task>-v1-full")
    parser.add_argument("--seed", type=int, default=0, help="same seed, byte-identical corpus")
    g = parser.add_argument_group("general")
    g.add_argument("--clips", type=int, default=300, help="general: number of clips")
    g.add_argument("--max-seconds", type=float, default=10.0, help="general: longest clip")
    g = parser.add_argument_group("real")
    g.add_argument("--scale", type=float, default=1.0,
                   help="real: multiplies the clips drawn per source (0.05 for a tiny corpus)")
    g.add_argument("--tasks", default=None,
                   help="real: comma-separated subset of the tasks (default: all four)")
    g.add_argument("--multitask-extra", type=Path, action="append", default=[], metavar="TASK",
                   help="real: also merge this scene task's labels into real_multitask (repeat)")
    g = parser.add_argument_group("union")
    g.add_argument("--from", dest="sources", type=Path, nargs="+", default=None, metavar="TASK",
                   help="union: the scene tasks to merge")
    g.add_argument("--seconds", type=float, default=4.0, help="union: clip length")
    g.add_argument("--multiclass", action="store_true",
                   help="union: one label a clip (top1_acc) instead of multilabel (mAP)")
    parser = parser.add_argument_group("keywords")
    parser.add_argument("--speakers", type=int, default=90,
                        help="espeak-ng speakers (split 70/15/15); Festival adds 6 train speakers")
    parser.add_argument("--clips-per-speaker-word", type=int, default=1,
                        help="repetitions of each word by each speaker (scales the corpus)")
    parser.add_argument("--words", default=None,
                        help="comma-separated subset of the 35 words (default: all)")
    parser.add_argument("--no-festival", action="store_true", help="espeak-ng speakers only")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes")
    parser.add_argument("--task-name", default=None, help="default: the corpus name")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    if args.corpus == "general":
        return make_general(args)
    if args.corpus == "real":
        return make_real(args)
    if args.corpus == "union":
        return make_union(args)
    from hear_suite.corpora.keywords import WORDS, KeywordConfig, build_keywords

    words = tuple(w.strip() for w in args.words.split(",")) if args.words else WORDS
    config = KeywordConfig(
        seed=args.seed, words=words, n_speakers=args.speakers, festival=not args.no_festival,
        clips_per_speaker_word=args.clips_per_speaker_word, sample_rate=args.sample_rate,
        task_name=args.task_name or "keywords",
    )
    started = time.time()
    task = build_keywords(args.out, config, workers=args.workers, progress=not args.quiet)
    seconds = time.time() - started
    print(f"wrote {task} in {seconds:.0f} s")
    print(summarize(task))
    return 0


def make_general(args: argparse.Namespace) -> int:
    from hear_suite.corpora.general import GeneralConfig, build_general

    if args.clips < 3 or args.max_seconds < 1.0:
        raise SystemExit("make-corpus general: need --clips >= 3 and --max-seconds >= 1")
    started = time.time()
    task = build_general(args.out, GeneralConfig(
        seed=args.seed, n_clips=args.clips, max_seconds=args.max_seconds,
        sample_rate=args.sample_rate, task_name=args.task_name or "general"),
        progress=not args.quiet)
    print(f"wrote {task} in {time.time() - started:.0f} s")
    return 0


def make_real(args: argparse.Namespace) -> int:
    from hear_suite.corpora.real import (TASKS, MissingPackage, RealConfig, build_real,
                                         package_table)

    tasks = tuple(t.strip() for t in args.tasks.split(",")) if args.tasks else TASKS
    if args.scale <= 0:
        raise SystemExit("make-corpus real: --scale must be > 0")
    started = time.time()
    try:
        written = build_real(args.out, RealConfig(seed=args.seed, scale=args.scale, tasks=tasks,
                                                  sample_rate=args.sample_rate),
                             progress=not args.quiet, multitask_extra=args.multitask_extra)
    except (MissingPackage, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"make-corpus real: {e}")
    for path in written:
        counts = {s: len(json.loads((path / f"{s}.json").read_text()))
                  for s in ("train", "valid", "test")}
        print(f"wrote {path}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(package_table([p for p in written if p.name != "real_multitask-v1-full"]))
    print(f"done in {time.time() - started:.0f} s")
    return 0


def make_union(args: argparse.Namespace) -> int:
    from hear_suite.corpora.union import merge_tasks

    if not args.sources:
        raise SystemExit("make-corpus union: give the tasks to merge with --from TASK [TASK ...]")
    try:
        path = merge_tasks(args.out, args.sources, task_name=args.task_name or "union",
                           seconds=args.seconds, multiclass=args.multiclass,
                           sample_rate=args.sample_rate)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"make-corpus union: {e}")
    counts = {s: len(json.loads((path / f"{s}.json").read_text())) for s in ("train", "valid", "test")}
    print(f"wrote {path}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def summarize(task: Path) -> str:
    """Clips and speakers per split, and level/timing statistics, of a keyword task."""
    corpus = json.loads((task / "corpus.json").read_text())
    speakers = json.loads((task / "speakers.json").read_text())
    lines = []
    for split in ("train", "valid", "test"):
        entries = json.loads((task / f"{split}.json").read_text())
        spk = {speakers[name] for name in entries}
        engines = collections.Counter(s.split(":")[0] for s in spk)
        lines.append(f"{split:5s}: {len(entries):5d} clips, {len(spk):3d} speakers "
                     f"({', '.join(f'{k} {v}' for k, v in sorted(engines.items()))})")
    clips = list(corpus["clips"].values())
    for key in ("spoken_s", "word_s", "offset_s", "level_db", "snr_db"):
        values = sorted(c[key] for c in clips)
        q = lambda f: values[min(len(values) - 1, int(f * len(values)))]
        lines.append(f"{key:9s} min {values[0]:7.2f}  p10 {q(0.1):7.2f}  median {q(0.5):7.2f}  "
                     f"p90 {q(0.9):7.2f}  max {values[-1]:7.2f}")
    stretched = sum(c["spoken_s"] > c["word_s"] + 1e-3 for c in clips)
    reverb = sum("reverb" in c for c in clips)
    lines.append(f"time-stretched {stretched}/{len(clips)}, reverberated {reverb}/{len(clips)}")
    return "\n".join(lines)
