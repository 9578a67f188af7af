"""Stage 2 of ``hear-suite train bagofcodes``: the k-means code books of the four views.

The training clips are read back from the log-mel cache one at a time, and of their bottleneck
vectors on a ``KMEANS_STEP``-frame grid a uniform sample of at most ``max_vectors`` per view is
kept as they stream by (:class:`BottomK`: the vectors with the smallest random keys; a vector
whose key can no longer get in is not even encoded). Then k-means per view
(:func:`fit_codebook`: scikit-learn ``KMeans``, ``MiniBatchKMeans`` above a size), seeded;
:func:`fit_codebooks` caches the result beside the run.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from hear_suite import checkpoint
from hear_suite.bagofcodes.cache import MelCache
from hear_suite.bagofcodes.model import VIEWS, BagOfCodesConfig, view_vectors
from hear_suite.training.distributed import weights_digest
from hear_suite.training.metrics import log, progress
from hear_suite.training.seeding import derive_seed

KMEANS_STEP = 10  # frames between the positions whose vectors k-means sees (the paper's grid)
class BottomK:
    """A uniform sample of at most ``k`` rows of a stream, in a buffer of ``2 k`` rows.

    Every row of the stream gets a uniform random key from ``rng`` and the ``k`` rows with the
    smallest keys are kept: sampling without replacement, the same rows however the stream is
    chunked (the keys are drawn in stream order). The keys come first: :meth:`candidates` draws
    those of the next ``n`` rows and says which of them can still get in (a key above the
    ``k``-th smallest so far never will), and only those rows go to :meth:`add`, so rows that
    are dropped need not be computed (here: encoded). When the buffer is full it is cut back to
    the ``k`` smallest keys."""

    def __init__(self, k: int, rng: np.random.Generator) -> None:
        self.k, self.rng = k, rng
        self.rows: Optional[np.ndarray] = None  # (2 k, d), allocated by the first add
        self.keys = np.empty(2 * k)
        self.held = 0
        self.threshold = np.inf  # the k-th smallest key so far
        self.pending = np.empty(0)

    def candidates(self, n: int) -> np.ndarray:
        """Draw the keys of the next ``n`` rows; the indices (into them) of those to add."""
        keys = self.rng.random(n)
        picked = np.flatnonzero(keys < self.threshold)
        self.pending = keys[picked]
        return picked

    def add(self, rows: np.ndarray) -> None:
        """The rows ``(m, d)`` that :meth:`candidates` just picked, in its order."""
        if len(rows) != len(self.pending):
            raise ValueError(f"{len(rows)} rows for {len(self.pending)} candidates")
        keys, self.pending = self.pending, np.empty(0)
        if self.rows is None:
            self.rows = np.empty((2 * self.k, rows.shape[1]), dtype=rows.dtype)
        while len(keys):
            keep = keys < self.threshold  # the threshold may have dropped in the last cut
            rows, keys = rows[keep], keys[keep]
            n = min(len(keys), len(self.keys) - self.held)
            self.rows[self.held:self.held + n] = rows[:n]
            self.keys[self.held:self.held + n] = keys[:n]
            self.held += n
            rows, keys = rows[n:], keys[n:]
            if self.held == len(self.keys):
                self._cut()

    def _cut(self) -> None:
        if self.held > self.k:
            top = np.argpartition(self.keys[:self.held], self.k - 1)[:self.k]
            self.rows[:self.k] = self.rows[top]
            self.keys[:self.k] = self.keys[top]
            self.held = self.k
            self.threshold = self.keys[:self.k].max()

    def sample(self) -> np.ndarray:
        """The kept rows ``(min(k, seen), d)``, in order of their keys."""
        if self.rows is None:
            return np.zeros((0, 0), dtype=np.float32)
        self._cut()
        return self.rows[np.argsort(self.keys[:self.held], kind="stable")]


def position_vectors(x: Tensor, config: BagOfCodesConfig, view: str, step: int = KMEANS_STEP,
                     batch: int = 4096) -> Iterator[Tensor]:
    """Vectors of ``view`` every ``step`` frames of ``x (1, n_mels, T)``, in position order,
    about ``batch`` at a time: ``(m, input dim)`` tensors. Only the frames of those positions are
    cut into views at once, so long clips stay in bounds."""
    span, per, dim = config.spans[view], config.per_position[view], config.input_dims[view]
    n_pos = max(0, (x.shape[-1] - span) // step + 1)
    chunk = max(1, batch // per)
    for p0 in range(0, n_pos, chunk):
        p1 = min(n_pos, p0 + chunk)
        vectors = view_vectors(x[..., p0 * step:(p1 - 1) * step + span], config, view, step)
        yield vectors.reshape(-1, dim)


@torch.no_grad()
def bottleneck_vectors(encoders: nn.ModuleDict, specs: Sequence[Tensor],
                       config: BagOfCodesConfig, view: str, step: int = KMEANS_STEP,
                       batch: int = 4096) -> np.ndarray:
    """Encoded vectors of ``view`` every ``step`` frames of every (standardised) spectrogram
    ``(n_mels, T)``, all in memory: ``(n, b)`` float64 (for small corpora, e.g.
    ``scripts/sweep_bagofcodes.py``; the trainer samples with :func:`sampled_bottlenecks`)."""
    out = [encoders[view](v).cpu() for s in specs
           for v in position_vectors(s[None], config, view, step, batch)]
    return torch.cat(out).numpy().astype(np.float64)


@torch.no_grad()
def sampled_bottlenecks(encoders: nn.ModuleDict, mels: MelCache, clips: np.ndarray,
                        config: BagOfCodesConfig, *, mean: float, std: float, max_vectors: int,
                        seed: int, device: torch.device) -> Dict[str, np.ndarray]:
    """A uniform sample of at most ``max_vectors`` bottleneck vectors per view, of the view
    vectors every ``KMEANS_STEP`` frames of ``clips`` (read back from the cache one clip at a
    time): ``{view: (n, b)}`` float32. Only vectors that can still enter the sample are encoded
    (about ``k (1 + ln(N / k))`` of ``N``). Memory: one clip and the samples (:class:`BottomK`)."""
    samples = {v: BottomK(max_vectors, np.random.default_rng(derive_seed(seed, -2, i)))
               for i, v in enumerate(VIEWS)}
    for clip in progress(clips.tolist(), desc="bottleneck vectors", leave=False):
        x = (torch.from_numpy(mels.clip(clip)).T[None].to(device) - mean) / std
        for v in VIEWS:
            for vectors in position_vectors(x, config, v):
                picked = samples[v].candidates(len(vectors))
                if len(picked):
                    chosen = vectors[torch.from_numpy(picked).to(device)]
                    samples[v].add(encoders[v](chosen).float().cpu().numpy())
    return {v: s.sample() for v, s in samples.items()}


def fit_codebook(z: np.ndarray, *, size: int, seed: int, max_vectors: int,
                 minibatch_above: int) -> Tuple[np.ndarray, Dict[str, Any]]:
    """k-means centroids ``(size, dim)`` of (at most ``max_vectors`` of) ``z`` and a summary."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    rng = np.random.default_rng(seed)
    if len(z) > max_vectors:
        z = z[rng.choice(len(z), max_vectors, replace=False)]
    if len(z) < size:
        raise SystemExit(f"only {len(z)} vectors for a code book of {size}: use more audio or a "
                         f"smaller --codebook-size")
    z = z.astype(np.float64)
    if len(z) > minibatch_above:
        km = MiniBatchKMeans(n_clusters=size, random_state=seed, batch_size=4096, n_init=3,
                             max_iter=100)
    else:
        km = KMeans(n_clusters=size, random_state=seed, n_init=1, max_iter=300)
    km.fit(z)
    used = len(np.unique(km.labels_))
    return km.cluster_centers_.astype(np.float32), {
        "vectors": int(len(z)), "algorithm": type(km).__name__,
        "inertia_per_vector": float(km.inertia_ / len(z)), "codes_used": int(used)}


def fit_codebooks(ae: nn.Module, mels: MelCache, clips: np.ndarray, config: BagOfCodesConfig,
                  args: argparse.Namespace, *, mean: float, std: float, device: torch.device,
                  path: Path) -> Dict[str, Any]:
    """k-means per view, or the result already in ``path`` when it was made for the same
    autoencoders and data (config, seed, weights, cache, held-out share)."""
    key = {"config": config.to_dict(), "seed": args.seed, "vectors": args.kmeans_vectors,
           "weights": weights_digest(ae.encoders),
           "data": mels.key["files_sha256"], "valid_fraction": args.valid_fraction}
    if path.is_file():
        saved = checkpoint.load_file(path)
        if saved.get("key") == key:
            log(f"code books from {path}")
            return saved
    t0 = time.perf_counter()
    ae.eval()
    z = sampled_bottlenecks(ae.encoders, mels, clips, config, mean=mean, std=std,
                            max_vectors=args.kmeans_vectors, seed=args.seed, device=device)
    centroids, summary = {}, {}
    for i, v in enumerate(progress(VIEWS, desc="k-means", leave=False)):
        c, summary[v] = fit_codebook(z[v], size=config.codebook_size,
                                     seed=derive_seed(args.seed, i),
                                     max_vectors=args.kmeans_vectors,
                                     minibatch_above=args.minibatch_above)
        centroids[v] = torch.from_numpy(c)
    books = {"key": key, "centroids": centroids, "summary": summary,
             "seconds": time.perf_counter() - t0}
    checkpoint.save_atomic(books, path)
    return books


