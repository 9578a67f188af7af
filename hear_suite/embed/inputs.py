"""What ``hear-suite embed`` reads: the input files, their output names, shards, and the audio.

Inputs are files, folders (searched recursively for audio files), glob patterns, or text files
(``.txt``, ``.list``, ``.lst``) listing one input per line. A file's output name is its path
relative to the folder it was found in, or, for a file named directly, its path relative to the
working directory (absolute paths lose their leading ``/``); two inputs with one output name are
an error. With ``--channels each`` every channel is an input of its own (``name.ch0``, ...).

Audio is read with soundfile (every format libsndfile reads: wav, flac, ogg, mp3 where it has
it, ...), mixed down to mono by the mean of the channels (or one channel), and resampled to the
model's rate with :func:`hear_suite.audio.resample`, the evaluation's resampler. A long file is
never read whole: :func:`open_clip` reads the blocks a model asks for, resampled exactly as the
whole file would be (:func:`hear_suite.streaming.resampled_reader`).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from hear_suite.audio import resample
from hear_suite.streaming import ClipSource, resampled_reader

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au",
                    ".snd", ".w64", ".caf", ".rf64"}
LIST_EXTENSIONS = {".txt", ".list", ".lst"}
CHANNELS = ("mix", "each")


@dataclass(frozen=True)
class Item:
    """One input: a file, the name its outputs get, and the channel it embeds (None: the mix)."""

    path: Path
    name: str
    channel: Optional[int] = None


def _name_of(path: Path) -> str:
    """Output name of a file given directly: relative to the working directory if inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix().lstrip("/")


def _expand(entry: str, seen_lists: Tuple[Path, ...] = ()) -> Iterable[Tuple[Path, str]]:
    path = Path(entry)
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS:
                yield f, f.relative_to(path).as_posix()
    elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        if path.resolve() in seen_lists:
            raise ValueError(f"input list {path} includes itself")
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                target = line if os.path.isabs(line) else str(path.parent / line)
                yield from _expand(target, seen_lists + (path.resolve(),))
    elif path.is_file():
        yield path, _name_of(path)
    elif glob.has_magic(entry):
        matches = sorted(glob.glob(entry, recursive=True))
        if not matches:
            raise FileNotFoundError(f"input pattern {entry!r} matches no file")
        for m in matches:
            if Path(m).is_file():
                yield Path(m), _name_of(Path(m))
    else:
        raise FileNotFoundError(f"input {entry!r} is no file, folder or pattern that exists")


def find_inputs(inputs: Sequence[str]) -> List[Item]:
    """Every input file once, sorted by output name; ``ValueError`` when two files would write
    to the same outputs."""
    if not inputs:
        raise ValueError("no input given: files, folders, glob patterns or a .txt list of paths")
    by_name: Dict[str, Path] = {}
    for entry in inputs:
        for path, name in _expand(str(entry)):
            other = by_name.setdefault(name, path)
            if other.resolve() != path.resolve():
                raise ValueError(f"two inputs would write the same outputs {name!r}: {other} and "
                                 f"{path}")
    return [Item(by_name[name], name) for name in sorted(by_name)]


def shard(items: Sequence[Item], index: int, count: int) -> List[Item]:
    """Every ``count``-th item from ``index``: the shards of one list are disjoint and cover it."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= i < n")
    return list(items[index::count])


def parse_shard(text: str) -> Tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return i, n


@dataclass(frozen=True)
class AudioInfo:
    frames: int
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    def length_at(self, rate: int) -> int:
        """Samples after resampling to ``rate`` (as :func:`hear_suite.audio.resample`)."""
        if rate == self.sample_rate:
            return self.frames
        return -(-self.frames * rate // self.sample_rate)


def _reason(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def audio_info(path: Path) -> AudioInfo:
    """The file's header: ``ValueError`` naming the problem for unreadable or empty files."""
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises RuntimeError / LibsndfileError / TypeError
        raise ValueError(f"not a readable audio file ({_reason(e)})") from None
    if info.frames <= 0:
        raise ValueError("the file holds no audio (0 samples)")
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels))


def with_channels(items: Sequence[Item], channels: str, infos: Dict[Path, AudioInfo]
                  ) -> List[Item]:
    """``channels="each"``: every item of a multi-channel file once per channel (``name.chK``);
    ``"mix"``: the items unchanged."""
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}, got {channels!r}")
    if channels == "mix":
        return list(items)
    out = []
    for item in items:
        n = infos[item.path].channels if item.path in infos else 1
        out += [Item(item.path, f"{item.name}.ch{k}", k) for k in range(n)] if n > 1 else [item]
    return out


def _mono(block: np.ndarray, channel: Optional[int]) -> np.ndarray:
    """``(samples, channels)`` -> ``(samples,)`` float32: one channel, or the mean of all."""
    if channel is not None:
        return np.ascontiguousarray(block[:, channel], dtype=np.float32)
    return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]


def read_clip(item: Item, sample_rate: int) -> np.ndarray:
    """The whole file as float32 ``(samples,)`` at ``sample_rate``; ``ValueError`` when it
    cannot be read, is empty, or holds NaN or infinite samples."""
    try:
        data, rate = sf.read(str(item.path), dtype="float32", always_2d=True)
    except Exception as e:
        raise ValueError(f"not a readable audio file ({_reason(e)})") from None
    if data.shape[0] == 0:
        raise ValueError("the file holds no audio (0 samples)")
    audio = resample(_mono(data, item.channel), rate, sample_rate)
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite values")
    return audio


class open_clip:
    """``with open_clip(item, rate, info) as source``: a :class:`ClipSource` of the file at the
    model's rate that reads (and resamples) only the blocks asked for; the file stays open."""

    def __init__(self, item: Item, sample_rate: int, info: AudioInfo) -> None:
        self.item, self.rate, self.info = item, sample_rate, info

    def __enter__(self) -> ClipSource:
        self.file = sf.SoundFile(str(self.item.path))

        def read(lo: int, hi: int) -> np.ndarray:
            self.file.seek(lo)
            return _mono(self.file.read(hi - lo, dtype="float32", always_2d=True),
                         self.item.channel)

        length, reader = resampled_reader(read, self.info.frames, self.info.sample_rate, self.rate)
        return ClipSource(length, reader)

    def __exit__(self, *exc) -> None:
        self.file.close()
