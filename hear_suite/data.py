"""Streaming training data: wav files read in ``DataLoader`` workers, one crop per draw.

Nothing here holds a dataset in memory: a training epoch is a list of clip indices (this rank's
share), cut into micro-batches of ``(clip index, draw id)`` pairs; a worker reads only the samples
of a draw's crop from disk. The crop of a draw is a pure function of its draw id, which is
derived from ``(seed, epoch, position in the epoch)``, so the data a step sees depends neither on
the number of workers nor on whether the run was interrupted: a run resumed mid-epoch skips the
micro-batches already taken and reads the same crops as an uninterrupted one.

- :class:`Crop` / :class:`CroppedClips`: a window of the model's length from anywhere in a clip
  (``random``) or its start (``start``), optionally shifted in time; zeros outside the clip.
- :class:`WholeClips`: whole clips for evaluation, grouped into batches of equal length.
- :func:`epoch_order`: this rank's clip order for an epoch, uniform (a permutation, as
  ``DistributedSampler``) or drawn with replacement by per-clip weights
  (:func:`label_balanced_weights`, AudioSet/FSD50K practice).
- :class:`EpochBatches`: the micro-batches of one epoch from a position on; :func:`loader` the
  ``DataLoader`` over them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from hear_suite.training.seeding import derive_seed
from hear_suite.training.sharding import shard_indices

CROP_MODES = ("start", "random")
Draw = Tuple[int, int]  # (clip index, draw id)


def read_segment(path: Path, start: int, length: int, sample_rate: int) -> np.ndarray:
    """Samples ``start .. start + length`` of a wav file as float32 mono ``(length,)``; positions
    before the start or after the end of the file are zeros. Reads only the overlap."""
    with open_wav(path, sample_rate) as f:
        return read_open(f, start, length)


def open_wav(path: Path, sample_rate: int) -> sf.SoundFile:
    """``path`` opened for reading; ``ValueError`` unless it is at ``sample_rate``."""
    f = sf.SoundFile(str(path))
    if f.samplerate != sample_rate:
        f.close()
        raise ValueError(f"{path} is at {f.samplerate} Hz, expected {sample_rate} Hz")
    return f


def read_open(f: sf.SoundFile, start: int, length: int) -> np.ndarray:
    """:func:`read_segment` of an open file."""
    out = np.zeros(length, dtype=np.float32)
    lo, hi = max(0, start), min(f.frames, start + length)
    if hi > lo:
        f.seek(lo)
        out[lo - start:hi - start] = f.read(hi - lo, dtype="float32", always_2d=True).mean(1)
    return out


def num_frames(path: Path) -> int:
    """Samples in a wav file (header only)."""
    return sf.info(str(path)).frames


@dataclass(frozen=True)
class Crop:
    """How one training example is cut from a clip of ``n`` samples.

    The clip is seen with ``pad_front`` zeros in front (the embedder's framing: the first window
    of a clip starts ``pad_front`` samples before it); a window of ``window`` samples starts at 0
    of that padded clip (``start``) or anywhere that keeps it within it (``random``; a clip
    shorter than the window starts at 0 and is zero-padded at the end); then a time shift uniform
    in ``-shift .. shift`` samples moves it (zeros fill in).
    """

    window: int
    mode: str = "random"
    pad_front: int = 0
    shift: int = 0

    def __post_init__(self) -> None:
        if self.mode not in CROP_MODES:
            raise ValueError(f"crop mode must be one of {CROP_MODES}, got {self.mode!r}")
        if self.window < 1 or self.pad_front < 0 or self.shift < 0:
            raise ValueError(f"need window >= 1, pad_front >= 0, shift >= 0: {self}")

    def start(self, n: int, rng: np.random.Generator) -> int:
        """First sample of the window in the clip's own coordinates (may be negative)."""
        start = 0
        if self.mode == "random":
            start = int(rng.integers(0, max(0, self.pad_front + n - self.window) + 1))
        if self.shift:
            start += int(rng.integers(-self.shift, self.shift + 1))
        return start - self.pad_front


class CroppedClips(Dataset):
    """``dataset[(i, draw)]`` -> ``(i, the crop of clip i for draw id draw (window,) float32)``;
    the file is opened once, its header gives the clip's length."""

    def __init__(self, paths: Sequence[Path], crop: Crop, sample_rate: int) -> None:
        self.paths = [Path(p) for p in paths]
        self.crop = crop
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: Draw) -> Tuple[int, Tensor]:
        i, draw = key
        with open_wav(self.paths[i], self.sample_rate) as f:
            start = self.crop.start(f.frames, np.random.default_rng(draw))
            return i, torch.from_numpy(read_open(f, start, self.crop.window))


def read_resampled(path: Path, sample_rate: int) -> np.ndarray:
    """A whole wav file as float32 mono ``(samples,)`` at ``sample_rate``, resampled if it is at
    another rate (one open of the file)."""
    with sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        audio = read_open(f, 0, f.frames)
    if rate != sample_rate:
        from hear_suite.audio import resample

        audio = resample(audio, rate, sample_rate)
    return audio


class WholeClips(Dataset):
    """``dataset[i]`` -> ``(i, audio (n_i,))``: whole clips (evaluation, the bag-of-codes cache).
    A file at another rate than ``sample_rate`` is an error, or with ``resample`` resampled."""

    def __init__(self, paths: Sequence[Path], sample_rate: int, *, resample: bool = False
                 ) -> None:
        self.paths = [Path(p) for p in paths]
        self.sample_rate = sample_rate
        self.resample = resample

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tuple[int, Tensor]:
        if self.resample:
            return i, torch.from_numpy(read_resampled(self.paths[i], self.sample_rate))
        with open_wav(self.paths[i], self.sample_rate) as f:
            return i, torch.from_numpy(read_open(f, 0, f.frames))


def fixed_draws(indices: Sequence[int], batch_size: int) -> List[List[Draw]]:
    """``indices`` in batches of ``batch_size``, each clip with draw id 0: for crops that take
    no randomness (``start`` crops without shift), e.g. evaluation or statistics."""
    indices = list(indices)
    return [[(i, 0) for i in indices[k:k + batch_size]]
            for k in range(0, len(indices), batch_size)]


def equal_length_batches(lengths: Sequence[int], indices: Sequence[int], batch_size: int
                         ) -> List[List[int]]:
    """``indices`` grouped into batches of at most ``batch_size`` clips of one length (in order
    of length, then index), so whole clips stack without padding."""
    by_length: Dict[int, List[int]] = {}
    for i in sorted(indices, key=lambda i: (lengths[i], i)):
        by_length.setdefault(lengths[i], []).append(i)
    return [group[k:k + batch_size] for group in by_length.values()
            for k in range(0, len(group), batch_size)]


def stack_clips(batch: List[Tuple[int, Tensor]]) -> Tuple[Tensor, Tensor]:
    """Collate ``(index, audio)`` pairs of one length (crops, or whole clips grouped by
    :func:`equal_length_batches`): indices ``(B,)`` and audio ``(B, n)``."""
    return torch.tensor([i for i, _ in batch]), torch.stack([a for _, a in batch])


# ---------------------------------------------------------------------------------------------
# epochs


def label_balanced_weights(label_sets: Sequence[Sequence[int]], n_labels: int) -> Tensor:
    """Sampling weight per clip: the sum over its labels of ``1 / (clips with that label)``, so
    every label is drawn about equally often (the balanced sampler of AudioSet/FSD50K training).
    ``(N,)`` float64; a clip without labels gets the smallest label weight."""
    counts = np.zeros(n_labels)
    for labels in label_sets:
        counts[list(labels)] += 1
    inv = np.divide(1.0, counts, out=np.zeros(n_labels), where=counts > 0)
    floor = inv[inv > 0].min() if (inv > 0).any() else 1.0
    return torch.tensor([inv[list(labels)].sum() if len(labels) else floor
                         for labels in label_sets], dtype=torch.float64)


def epoch_order(n: int, *, epoch: int, seed: int, rank: int, world_size: int,
                weights: Optional[Tensor] = None) -> Tensor:
    """This rank's clip indices for ``epoch`` (``(ceil(n / world_size),)`` int64).

    Uniform: a permutation shared by the ranks and sharded, as ``DistributedSampler``
    (:func:`hear_suite.training.shard_indices`). With ``weights (n,)``: ``n`` draws with
    replacement in proportion to them, shared by the ranks and sharded alike. Uses its own
    generator: the global RNG is neither consumed nor read."""
    if weights is None:
        return shard_indices(n, rank=rank, world_size=world_size, epoch=epoch, seed=seed)
    if len(weights) != n:
        raise ValueError(f"{len(weights)} weights for {n} clips")
    g = torch.Generator().manual_seed(derive_seed(seed, epoch, 1))
    order = torch.multinomial(weights, n, replacement=True, generator=g)
    # the draws sharded (and padded) exactly as a permutation would be
    return order[shard_indices(n, rank=rank, world_size=world_size, epoch=epoch, seed=seed,
                               shuffle=False)]


class EpochBatches(Sampler[List[Draw]]):
    """The micro-batches of one rank's epoch: consecutive slices of ``order`` of
    ``micro_batch`` clips, each clip paired with the draw id of its position, starting after
    the first ``skip`` micro-batches (those taken before an interruption)."""

    def __init__(self, order: Tensor, micro_batch: int, *, seed: int, epoch: int, rank: int,
                 skip: int = 0) -> None:
        if micro_batch < 1:
            raise ValueError(f"micro_batch must be positive, got {micro_batch}")
        self.order = order.tolist()
        self.micro_batch = micro_batch
        self.seed, self.epoch, self.rank = seed, epoch, rank
        self.skip = skip

    @property
    def total(self) -> int:
        """Micro-batches in the whole epoch (skipped ones included)."""
        return math.ceil(len(self.order) / self.micro_batch)

    def __len__(self) -> int:
        return max(0, self.total - self.skip)

    def __iter__(self) -> Iterator[List[Draw]]:
        for b in range(self.skip, self.total):
            lo = b * self.micro_batch
            yield [(i, derive_seed(self.seed, self.epoch, self.rank, lo + k))
                   for k, i in enumerate(self.order[lo:lo + self.micro_batch])]


@dataclass
class EpochStream:
    """A rank's training stream: every epoch, ``clips`` in the order of :func:`epoch_order`
    (uniform, or by ``weights``), read by ``workers`` processes in micro-batches of
    ``micro_batch`` crops, grouped ``accumulate`` micro-batches per optimizer step."""

    clips: CroppedClips
    micro_batch: int
    accumulate: int
    seed: int
    rank: int
    world_size: int
    workers: int
    device: torch.device
    weights: Optional[Tensor] = None

    def steps_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.clips) / self.world_size)
        return math.ceil(math.ceil(per_rank / self.micro_batch) / self.accumulate)

    def epoch(self, epoch: int, skip_steps: int = 0) -> Iterator[List[Tuple[Tensor, Tensor]]]:
        """Groups of micro-batches ``(clip indices (B,), crops (B, window))`` of ``epoch``, from
        optimizer step ``skip_steps`` on."""
        order = epoch_order(len(self.clips), epoch=epoch, seed=self.seed, rank=self.rank,
                            world_size=self.world_size, weights=self.weights)
        sampler = EpochBatches(order, self.micro_batch, seed=self.seed, epoch=epoch,
                               rank=self.rank, skip=skip_steps * self.accumulate)
        batches = loader(self.clips, sampler, workers=self.workers, device=self.device,
                         collate_fn=stack_clips)
        group: List[Tuple[Tensor, Tensor]] = []
        for batch in batches:
            group.append(batch)
            if len(group) == self.accumulate:
                yield group
                group = []
        if group:
            yield group


def loader(dataset: Dataset, batch_sampler: Sampler, *, workers: int, device: torch.device,
           collate_fn=None) -> DataLoader:
    """A ``DataLoader`` over ``batch_sampler`` with ``workers`` reader processes. It has its own
    generator, so starting it draws nothing from the global RNG (resumed runs stay exact)."""
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers,
                      pin_memory=device.type == "cuda", generator=torch.Generator(),
                      collate_fn=collate_fn, persistent_workers=False,
                      prefetch_factor=4 if workers > 0 else None)
