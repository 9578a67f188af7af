"""``hear-suite embed``: embeddings of any audio files with any HEAR module, resumable, sharded.

    hear-suite embed --module hear_suite.kwmlp INPUT... --out DIR [--model FILE]
        [--model-options JSON] [--scene] [--timestamp] [--device cpu|cuda] [--batch-seconds 60]
        [--channels mix|each] [--format npy|npz] [--workers N] [--shard i/n] [--strict]

Inputs and output names: :mod:`hear_suite.embed.inputs`; outputs and ``index.csv``:
:mod:`hear_suite.embed.outputs`. Neither ``--scene`` nor ``--timestamp``: both.

- Short files (at most ``--batch-seconds`` at the model's rate) are read (and resampled) by
  ``--workers`` processes and embedded in batches of files of the same length, up to
  ``--batch-seconds`` of audio per call: a batch equals its items, as the HEAR API asks.
- Longer files are never held whole: a hear_suite model streams them (its ``stream`` method over
  a :class:`~hear_suite.streaming.ClipSource` that reads and resamples the blocks it asks for;
  equal to the whole-file call), timestamp embeddings going to disk block by block. Any other
  HEAR module gets the whole file in one call.
- A file that cannot be embedded (unreadable, empty, NaN, or a model error) is reported in
  ``index.csv`` and at the end, and the run goes on; the exit status is 1 only when no file has
  embeddings or, with ``--strict``, when any failed.
- A rerun skips every input whose outputs exist (they are written by renames).
- ``--shard i/n`` embeds every n-th input from the i-th, for processes or machines splitting one
  list; under ``torchrun`` the shard is the process's rank (and ``--device cuda`` its
  ``LOCAL_RANK`` GPU). Each shard writes ``index.i-of-n.csv``; the last one to finish also
  writes their union, ``index.csv``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from hear_suite.embed.inputs import (CHANNELS, AudioInfo, Item, audio_info, find_inputs,
                                     open_clip, parse_shard, read_clip, shard, with_channels)
from hear_suite.embed.outputs import (FORMATS, TimestampWriter, array_shapes, is_done,
                                      output_files, shape_text, write_index, write_outputs)

EMBEDDED, DONE, ERROR = "embedded", "already done", "error"


class _Reader(Dataset):
    """``reader[i]`` -> ``(i, audio (samples,) float32 or None, error or None)``, in workers."""

    def __init__(self, items: Sequence[Item], sample_rate: int) -> None:
        self.items, self.sample_rate = list(items), sample_rate

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Tuple[int, Optional[np.ndarray], Optional[str]]:
        try:
            return i, read_clip(self.items[i], self.sample_rate), None
        except ValueError as e:
            return i, None, str(e)


def _as_is(sample):
    return sample


def load_module(module: str, model: Optional[str], options: Mapping[str, Any], device: str):
    """``(module, model)``: any HEAR module by import name, its model loaded and moved."""
    hear = importlib.import_module(module)
    for name in ("load_model", "get_scene_embeddings", "get_timestamp_embeddings"):
        if not hasattr(hear, name):
            raise ValueError(f"{module} is not a HEAR module: it has no {name}()")
    loaded = hear.load_model(model, **options) if model else hear.load_model(**options)
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.to(device)
    return hear, loaded


def torchrun_shard() -> Optional[Tuple[int, int]]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


class _Run:
    """The state of one ``embed_files`` call: outputs, rows, progress."""

    def __init__(self, hear, model, out: Path, *, scene: bool, timestamp: bool, fmt: str,
                 infos: Dict[Path, AudioInfo], bar: tqdm, device: str) -> None:
        self.hear, self.model, self.out = hear, model, out
        self.scene, self.timestamp, self.fmt = scene, timestamp, fmt
        self.infos, self.bar, self.device = infos, bar, device
        self.rows: Dict[str, Dict[str, Any]] = {}
        self.seconds = 0.0
        self.started = time.perf_counter()

    def files(self, item: Item) -> Dict[str, Path]:
        return output_files(self.out, item.name, self.fmt, scene=self.scene,
                            timestamp=self.timestamp)

    def record(self, item: Item, status: str, error: str = "",
               shapes: Optional[Mapping[str, Tuple[int, ...]]] = None) -> None:
        """One index row; ``shapes`` of the outputs just written (else read from their headers)."""
        info = self.infos.get(item.path)
        row: Dict[str, Any] = {"path": str(item.path), "output": item.name, "status": status,
                               "error": error}
        if info is not None:
            row.update(duration_s=f"{info.seconds:.3f}", sample_rate=info.sample_rate,
                       channels=info.channels)
        if status != ERROR:
            shapes = shapes if shapes is not None else array_shapes(self.files(item))
            row.update(scene_shape=shape_text(shapes.get("scene")),
                       timestamp_shape=shape_text(shapes.get("timestamp")))
        self.rows[item.name] = row
        if status != DONE and info is not None:
            self.seconds += info.seconds
            self.bar.update(info.seconds)
            elapsed = time.perf_counter() - self.started
            self.bar.set_postfix(files=len(self.rows), hours=f"{self.seconds / 3600:.2f}",
                                 xRT=f"{self.seconds / max(elapsed, 1e-9):.0f}")

    def embed_batch(self, batch: Sequence[Tuple[Item, np.ndarray]]) -> None:
        """Files of one length in one call; a failing batch is retried file by file, so one
        bad file does not take the others with it."""
        try:
            audio = torch.from_numpy(np.stack([a for _, a in batch])).to(self.device)
            scene = (self.hear.get_scene_embeddings(audio, self.model).cpu()
                     if self.scene else None)
            emb = ts = None
            if self.timestamp:
                emb, ts = self.hear.get_timestamp_embeddings(audio, self.model)
        except Exception as e:
            if len(batch) > 1:
                for one in batch:
                    self.embed_batch([one])
            else:
                self.record(batch[0][0], ERROR, f"{type(e).__name__}: {e}")
            return
        for k, (item, _) in enumerate(batch):
            shapes = write_outputs(
                self.files(item), scene=None if scene is None else scene[k].numpy(),
                timestamps=(emb[k].cpu().numpy(), ts[k].cpu().numpy()) if self.timestamp else None)
            self.record(item, EMBEDDED, shapes=shapes)

    def embed_long(self, item: Item) -> None:
        """A file longer than ``--batch-seconds``: streamed (hear_suite models) or whole."""
        if not hasattr(self.model, "stream"):
            try:
                audio = read_clip(item, self.model.sample_rate)
            except ValueError as e:
                return self.record(item, ERROR, str(e))
            return self.embed_batch([(item, audio)])
        writer = TimestampWriter(self.out, item.name) if self.timestamp else None
        try:
            with open_clip(item, self.model.sample_rate, self.infos[item.path]) as source:
                scene = self.model.stream(source, scene=self.scene,
                                          on_timestamps=writer.add if writer else None)
            shapes = write_outputs(self.files(item),
                                   scene=None if scene is None else scene.numpy(),
                                   timestamps=writer)
            self.record(item, EMBEDDED, shapes=shapes)
        except Exception as e:
            if writer is not None:
                writer.discard()
            self.record(item, ERROR, f"{type(e).__name__}: {e}")


def embed_files(inputs: Sequence[str], out: str | Path, *, module: str = "hear_suite.kwmlp",
                model: Optional[str] = None, model_options: Optional[Mapping[str, Any]] = None,
                scene: bool = True, timestamp: bool = True, device: str = "cpu",
                batch_seconds: float = 60.0, channels: str = "mix", fmt: str = "npy",
                workers: int = 0, shard_of: Optional[Tuple[int, int]] = None,
                progress: bool = True) -> List[Dict[str, Any]]:
    """Embed ``inputs`` (files, folders, globs, ``.txt`` lists) with the HEAR ``module`` into
    ``out`` and return the rows of the index (also written to ``out``): one dict per input with
    the columns of :data:`hear_suite.embed.outputs.INDEX_COLUMNS`, ``status`` one of
    ``embedded``, ``already done``, ``error``. Options: see :mod:`hear_suite.embed.run`."""
    if not scene and not timestamp:
        raise ValueError("nothing to embed: ask for scene and/or timestamp embeddings")
    if batch_seconds <= 0 or workers < 0:
        raise ValueError("batch_seconds must be > 0 and workers >= 0")
    if fmt not in FORMATS or channels not in CHANNELS:
        raise ValueError(f"fmt must be one of {FORMATS}, channels one of {CHANNELS}")
    out = Path(out)
    shard_of = shard_of or torchrun_shard() or (0, 1)
    items = shard(find_inputs(inputs), *shard_of)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here")
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    hear, loaded = load_module(module, model, dict(model_options or {}), device)
    rate = int(loaded.sample_rate)
    infos: Dict[Path, AudioInfo] = {}
    unreadable: Dict[Item, str] = {}
    for item in items:
        try:
            infos[item.path] = audio_info(item.path)
        except ValueError as e:
            unreadable[item] = str(e)
    items = with_channels([i for i in items if i.path in infos], channels, infos)
    bar = tqdm(total=0, unit="s", desc=f"{module} embed", dynamic_ncols=True,
               disable=not progress, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio "
                                                "[{elapsed}<{remaining}{postfix}]")
    run = _Run(hear, loaded, out, scene=scene, timestamp=timestamp, fmt=fmt, infos=infos,
               bar=bar, device=device)
    for item, error in unreadable.items():
        run.record(item, ERROR, error)
    pending = []
    for item in items:
        if is_done(run.files(item)):
            run.record(item, DONE)
        else:
            pending.append(item)
    bar.total = sum(infos[i.path].seconds for i in pending)
    bar.refresh()
    limit = int(batch_seconds * rate)
    short = [i for i in pending if infos[i.path].length_at(rate) <= limit]
    with torch.no_grad():
        _embed_short(run, short, rate, limit, workers)
        for item in pending:
            if infos[item.path].length_at(rate) > limit:
                run.embed_long(item)
    bar.close()
    out.mkdir(parents=True, exist_ok=True)
    write_index(out, list(run.rows.values()), shard_of)
    return sorted(run.rows.values(), key=lambda r: r["output"])


def _embed_short(run: _Run, items: Sequence[Item], rate: int, limit: int, workers: int) -> None:
    """Read in workers, group by length, embed a group when it holds ``limit`` samples, and every
    group when together they do (so memory stays bounded with many lengths)."""
    groups: Dict[int, List[Tuple[Item, np.ndarray]]] = {}
    held = 0
    loader = DataLoader(_Reader(items, rate), batch_size=None, num_workers=workers,
                        collate_fn=_as_is)
    for i, audio, error in loader:
        if error is not None:
            run.record(items[i], ERROR, error)
            continue
        group = groups.setdefault(len(audio), [])
        group.append((items[i], audio))
        held += len(audio)
        if len(audio) * len(group) >= limit:
            run.embed_batch(groups.pop(len(audio)))
            held -= len(audio) * len(group)
        elif held >= limit:
            for group in groups.values():
                run.embed_batch(group)
            groups, held = {}, 0
    for group in groups.values():
        run.embed_batch(group)


# ---------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio files, folders (recursive), glob patterns, or .txt lists")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--module", default="hear_suite.kwmlp",
                        help="any HEAR module by import name (default hear_suite.kwmlp)")
    parser.add_argument("--model", default=None, help="weights file for load_model")
    parser.add_argument("--model-options", default="{}", help="JSON keyword options of load_model")
    parser.add_argument("--scene", action="store_true", help="scene embeddings")
    parser.add_argument("--timestamp", action="store_true",
                        help="timestamp embeddings and their timestamps (neither flag: both)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-seconds", type=float, default=60.0,
                        help="audio per model call; longer files are streamed (default 60)")
    parser.add_argument("--channels", choices=CHANNELS, default="mix",
                        help="mix: the mean of the channels; each: every channel on its own")
    parser.add_argument("--format", choices=FORMATS, default="npy", dest="fmt",
                        help="npy: files per array; npz: one archive per input")
    parser.add_argument("--workers", type=int, default=0, help="decoding processes (default 0)")
    parser.add_argument("--shard", default=None, help="i/n: this process's share of the inputs")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any file failed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    try:
        options = json.loads(args.model_options)
        if not isinstance(options, dict):
            raise ValueError("--model-options must be a JSON object")
        both = not args.scene and not args.timestamp
        rows = embed_files(args.inputs, args.out, module=args.module, model=args.model,
                           model_options=options, scene=args.scene or both,
                           timestamp=args.timestamp or both, device=args.device,
                           batch_seconds=args.batch_seconds, channels=args.channels,
                           fmt=args.fmt, workers=args.workers,
                           shard_of=parse_shard(args.shard) if args.shard else None,
                           progress=not args.quiet)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"hear-suite embed: {e}")
    counts = {s: sum(r["status"] == s for r in rows) for s in (EMBEDDED, DONE, ERROR)}
    hours = sum(float(r.get("duration_s") or 0) for r in rows if r["status"] == EMBEDDED) / 3600
    print(f"{counts[EMBEDDED]} embedded ({hours:.2f} h of audio), {counts[DONE]} already done, "
          f"{counts[ERROR]} failed; index: {Path(args.out) / 'index.csv'}")
    for r in rows:
        if r["status"] == ERROR:
            print(f"  failed: {r['path']}: {r['error']}", file=sys.stderr)
    if counts[EMBEDDED] + counts[DONE] == 0 or (args.strict and counts[ERROR]):
        return 1
    return 0
