"""The bag-of-codes trainer's log-mel cache: every clip's raw log-mel once, in one file on disk.

Two files in the run directory:

- ``logmel.f16``: the frames of all clips one after another, float16, time-major: frame ``t`` of
  clip ``i`` is row ``offsets[i] + t`` of a ``(total frames, n_mels)`` array, so a window of
  frames is one contiguous positioned read (:meth:`MelCache.read`, ``os.pread``: nothing is
  mapped into the process, so its memory does not grow with the cache).
- ``logmel.pt``: the index, written last and atomically: ``offsets (N + 1,)`` int64, ``sums
  (N, 2)`` float64 (sum and sum of squares of each clip's stored values, so the standardisation
  statistics of any subset of clips are exact float64 sums), the seconds of audio, and the
  ``key`` the cache was made for (a digest of the files' paths, sizes and modification times and
  the frontend's settings).

:func:`open_or_build` reuses a cache whose index matches the key and whose data file has the
size the index says, and rebuilds it otherwise. Building reads the files one at a time (or in
``workers`` DataLoader processes), runs the frontend on the training device in blocks of frames
(bounded memory for clips of any length), and appends to a temporary file renamed into place.
Float16 keeps about three decimal digits of a log-mel value (``log(mel + 1e-6)``, range about
-14 to 10): an error below 0.01, far under the training noise (dropout 0.5).
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hear_suite import checkpoint, data
from hear_suite.bagofcodes.model import BagOfCodesConfig
from hear_suite.training.metrics import progress

DATA, INDEX = "logmel.f16", "logmel.pt"
FORMAT, VERSION = "hear_suite_logmel_cache", 1
DTYPE = np.dtype(np.float16)
# the config fields that decide a clip's raw log-mel (unit_frames: clips are padded to 1 s)
FRONTEND_FIELDS = ("sample_rate", "n_mels", "fmin", "fmax", "n_fft", "win_length", "hop_length",
                   "log_eps", "unit_frames")
BLOCK_FRAMES = 6000  # frontend frames computed at once (1 minute): bounds memory on long clips
POLL_S = 0.5  # seconds between the waiting ranks' looks for the index


# ---------------------------------------------------------------------------------------------
# audio and log-mels


@torch.no_grad()
def clip_log_mel(audio: Tensor, frontend: nn.Module, config: BagOfCodesConfig,
                 device: torch.device, block_frames: int = BLOCK_FRAMES) -> Tensor:
    """Raw log-mel ``(n_mels, frames)`` float32 of ``audio (samples,)``, on the CPU.

    A clip shorter than one second is zero-padded to exactly ``unit_frames`` frames. The frontend
    has no centre padding (frame ``k`` covers samples ``k hop .. k hop + win - 1``), so blocks of
    ``block_frames`` frames computed from overlapping stretches of samples join exactly.
    """
    hop, win = config.hop_length, config.win_length
    min_len = (config.unit_frames - 1) * hop + win
    audio = F.pad(audio, (0, max(0, min_len - len(audio))))
    frames = (len(audio) - win) // hop + 1
    out = []
    for k in range(0, frames, block_frames):
        n = min(block_frames, frames - k)
        piece = audio[k * hop:(k + n - 1) * hop + win]
        out.append(frontend(piece[None].to(device))[0].cpu())
    return torch.cat(out, dim=1)


def only(batch: list) -> Any:
    """``collate_fn`` of loaders whose batches are single items already."""
    return batch[0]


# ---------------------------------------------------------------------------------------------
# the cache


def cache_key(files: Sequence[Path], config: BagOfCodesConfig) -> Dict[str, Any]:
    """What a cache is valid for: the files (resolved paths, sizes, modification times, in
    order) and the frontend's settings."""
    h = hashlib.sha256()
    for p in files:
        st = os.stat(p)
        h.update(f"{Path(p).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"format": FORMAT, "version": VERSION, "dtype": DTYPE.name, "clips": len(files),
            "files_sha256": h.hexdigest(),
            "frontend": {k: getattr(config, k) for k in FRONTEND_FIELDS}}


class MelCache:
    """An opened cache (read-only): :meth:`read` frames of a clip, :meth:`windows` many
    equal-length windows, :meth:`statistics` of a subset of clips. Safe to hand to DataLoader
    workers: each process opens its own descriptor."""

    def __init__(self, directory: Path, index: Dict[str, Any]) -> None:
        self.path = Path(directory) / DATA
        self.key = index["key"]
        self.n_mels = int(index["n_mels"])
        self.offsets = index["offsets"].numpy()
        self.frames = np.diff(self.offsets)                       # (N,) frames per clip
        self.sums = index["sums"].numpy()                         # (N, 2) float64
        self.seconds = float(index["seconds"])
        self.row_bytes = self.n_mels * DTYPE.itemsize
        self._fd: Optional[int] = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.frames)

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)

    def _descriptor(self) -> int:
        if self._pid != os.getpid():  # a forked worker: do not share the parent's descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def read(self, clip: int, start: int, count: int) -> np.ndarray:
        """Frames ``start .. start + count`` of ``clip``: ``(count, n_mels)`` float32."""
        if not 0 <= start <= start + count <= self.frames[clip]:
            raise IndexError(f"frames {start}..{start + count} outside clip {clip} "
                             f"({self.frames[clip]} frames)")
        raw = os.pread(self._descriptor(), count * self.row_bytes,
                       int(self.offsets[clip] + start) * self.row_bytes)
        return np.frombuffer(raw, dtype=DTYPE).reshape(count, self.n_mels).astype(np.float32)

    def windows(self, clips: np.ndarray, starts: np.ndarray, span: int) -> np.ndarray:
        """``span`` frames from ``starts[j]`` of ``clips[j]``: ``(n, span, n_mels)`` float32."""
        return np.stack([self.read(int(c), int(s), span) for c, s in zip(clips, starts)])

    def clip(self, i: int) -> np.ndarray:
        """All frames of clip ``i``: ``(frames, n_mels)`` float32."""
        return self.read(i, 0, int(self.frames[i]))

    def statistics(self, clips: np.ndarray) -> Tuple[float, float]:
        """Mean and (unbiased) standard deviation of every stored value of ``clips``."""
        s, s2 = self.sums[clips].sum(0)
        n = float(self.frames[clips].sum()) * self.n_mels
        mean = s / n
        return float(mean), float(np.sqrt(max(0.0, (s2 - n * mean * mean) / (n - 1))))


def open_cache(directory: Path, key: Dict[str, Any]) -> Optional[MelCache]:
    """The cache in ``directory`` if its index was made for ``key`` and its data file is
    complete, else None."""
    index_path, data_path = Path(directory) / INDEX, Path(directory) / DATA
    if not (index_path.is_file() and data_path.is_file()):
        return None
    try:
        index = checkpoint.load_file(index_path)
    except (RuntimeError, FileNotFoundError):  # torn by another process, or removed meanwhile
        return None
    if not isinstance(index, dict) or index.get("key") != key:
        return None
    cache = MelCache(directory, index)
    if data_path.stat().st_size != int(cache.offsets[-1]) * cache.row_bytes:
        return None
    return cache


def build(directory: Path, files: Sequence[Path], key: Dict[str, Any], config: BagOfCodesConfig,
          frontend: nn.Module, *, device: torch.device, workers: int) -> None:
    """Compute every file's raw log-mel and write the cache (see the module docstring)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # the old index goes first: no index ever describes a data file it was not made with
    (directory / INDEX).unlink(missing_ok=True)
    tmp = directory / f".{DATA}.{os.getpid()}.tmp"
    offsets, sums, samples = [0], np.zeros((len(files), 2)), 0
    batches = [[i] for i in range(len(files))]
    loader = data.loader(data.WholeClips(files, config.sample_rate, resample=True), batches, workers=workers,
                         device=device, collate_fn=only)
    try:
        with open(tmp, "wb") as f:
            for i, audio in progress(loader, total=len(files), desc="log-mel cache",
                                              leave=False):
                samples += len(audio)
                rows = clip_log_mel(audio, frontend, config, device).T.numpy().astype(DTYPE)
                f.write(rows.tobytes())
                stored = rows.astype(np.float64)  # the statistics of what training reads
                sums[i] = stored.sum(), np.square(stored).sum()
                offsets.append(offsets[-1] + len(rows))
        os.replace(tmp, directory / DATA)
    finally:
        tmp.unlink(missing_ok=True)
    checkpoint.save_atomic({
        "key": key, "n_mels": config.n_mels, "offsets": torch.tensor(offsets, dtype=torch.int64),
        "sums": torch.from_numpy(sums), "seconds": samples / config.sample_rate}, directory / INDEX)


def open_or_build(directory: Path, files: Sequence[Path], config: BagOfCodesConfig,
                  frontend: nn.Module, *, device: torch.device, workers: int,
                  is_main: bool) -> Tuple[MelCache, bool]:
    """The cache of ``files`` in ``directory``: reused if valid, else built by the main process
    while the others wait for it. Returns the cache and whether it was built now.

    The other ranks poll the file system rather than wait at a barrier: building can take longer
    than a collective's timeout (10 minutes under NCCL). If the main process fails, torchrun
    stops them."""
    key = cache_key(files, config)
    cache = open_cache(directory, key)
    if cache is not None:
        return cache, False
    if not is_main:
        while cache is None:
            time.sleep(POLL_S)
            cache = open_cache(directory, key)
        return cache, True
    build(directory, files, key, config, frontend, device=device, workers=workers)
    cache = open_cache(directory, key)
    if cache is None:
        raise RuntimeError(f"the log-mel cache in {directory} was written but does not read "
                           f"back; was it changed meanwhile?")
    return cache, True
