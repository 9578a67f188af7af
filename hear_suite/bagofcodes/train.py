"""``hear-suite train bagofcodes``: unsupervised training of the bag-of-codes model (Verma).

    hear-suite make-corpus general --out data --clips 1200      # speech, music, noise, events
    hear-suite train bagofcodes --audio data/general-v1-full --out RUN [--width 2048 ...]
    hear-suite train bagofcodes --audio data/general-v1-full --out RUN --max-steps 30  # smoke run
    torchrun --nproc_per_node=N -m hear_suite.cli train bagofcodes --audio ... --out RUN

Log-mel cache: every clip's raw log-mel spectrogram is computed once (the frontend on the
training device, the files read by ``--workers`` processes) into ``RUN/logmel.f16`` (float16,
time-major) with its index ``RUN/logmel.pt`` (:mod:`hear_suite.bagofcodes.cache`). A rerun with
the same files (paths, sizes, modification times) and frontend reuses it, otherwise it is
rebuilt; under torchrun rank 0 builds it while the other ranks wait. One clip in
``1 / --valid-fraction`` is held out. The spectrograms are standardised with the global mean and
standard deviation of the training clips' values (float64 sums taken while building; stored in
the model).

Stage 1, autoencoders (DDP under torchrun): every optimizer step draws, for each of the four
views, ``--batch-size`` vectors (split evenly over the processes) at random positions: a random
training clip, start frame and, for ``pat``/``fenv``, start mel bin (the paper's sampling). Only
those windows are read from the cache (positioned reads), so host and device memory do not grow
with the corpus. A step's vectors are a pure function of (seed, rank, epoch, step), drawn in
``--workers`` DataLoader processes; ``--accumulate N`` splits them into N micro-batches (the same
vectors and mean gradient in less memory). One AdamW step on the sum of the four mean-squared
reconstruction errors (dropout 0.5 in encoder and decoder); ``--precision bf16`` runs the
autoencoders under bfloat16 autocast (the views are cut and resized, and the errors computed, in
float32); ``--compile`` compiles them. An "epoch" is ``--steps-per-epoch`` steps; the per-view MSE
on a fixed set of 1024 vectors per view from the held-out clips is logged each epoch
(``metrics.csv``, ``curves.png``). ``last.pt`` is written after every epoch and every
``--checkpoint-every`` steps; a rerun resumes from it, mid-epoch too, bit-identically with the
same number of processes. ``--max-steps N`` stops after N optimizer steps and still goes on to
stage 2, so even a smoke run ends with a loadable ``bagofcodes.pt``.

Stage 2, code books (rank 0): the training clips are read back from the cache one at a time,
and of their bottleneck vectors on a 10-frame grid a uniform sample of at most
``--kmeans-vectors`` per view is kept as they stream by (the vectors with the smallest random
keys; a vector whose key can no longer get in is not even encoded). Then k-means with
``--codebook-size`` clusters per view (scikit-learn ``KMeans``; ``MiniBatchKMeans`` above
``--minibatch-above`` vectors), seeded. The result goes to ``codebooks.pt`` (reused while
autoencoders and data are unchanged) and the model to ``RUN/bagofcodes.pt``.

Inputs: HEAR task directories (every split's audio at 16 kHz) and/or folders of wav files
(searched recursively; other sample rates are resampled). Clips shorter than one second are
zero-padded to one second.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from hear_suite import data
from hear_suite.bagofcodes import cache
from hear_suite.bagofcodes.cache import MelCache, clip_log_mel
from hear_suite.bagofcodes.codebooks import fit_codebooks
from hear_suite.bagofcodes.io import save_bagofcodes
from hear_suite.bagofcodes.model import (VIEWS, BagOfCodes, BagOfCodesConfig, build_decoder,
                                         build_encoder, build_frontend)
from hear_suite.tasks import read_task
from hear_suite.version import __version__
from hear_suite.training.args import (add_run_arguments, micro_batch_size, plain_args,
                                      run_argument_problems)
from hear_suite.training.distributed import (barrier, check_replicas_identical, DistInfo,
                                             run_distributed, wrap_ddp)
from hear_suite.training.metrics import log, MetricsLog, plot_curves, progress
from hear_suite.training.schedules import WarmupDecayLR
from hear_suite.training.seeding import derive_seed, seed_everything
from hear_suite.training.state import resume, RunDir, save_run_state
from hear_suite.training.steps import (autocast, compiled, epoch_means, EpochPosition, Stepper,
                                       stop_now, train_epoch)

WEIGHTS, CODEBOOKS = "bagofcodes.pt", "codebooks.pt"
CURVES = {"train MSE": [f"train_{v}" for v in VIEWS], "valid MSE": [f"valid_{v}" for v in VIEWS],
          "learning rate": ["lr"]}
VALID_VECTORS = 1024

Batch = Dict[str, Tensor]  # view -> (n, input dim) standardised view vectors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio", type=Path, nargs="+", required=True,
                        help="HEAR task directories and/or folders of wav files")
    add_run_arguments(parser)
    g = parser.add_argument_group("model (defaults: the paper's)")
    g.add_argument("--width", type=int, default=2048, help="autoencoder hidden units")
    g.add_argument("--depth", type=int, default=3, help="linear layers of encoder and decoder")
    g.add_argument("--compression", type=int, default=10, help="F: bottleneck = input / F")
    g.add_argument("--dropout", type=float, default=0.5)
    g.add_argument("--codebook-size", type=int, default=256, help="D, clusters per view")
    g = parser.add_argument_group("autoencoder training")
    g.add_argument("--epochs", type=int, default=20)
    g.add_argument("--steps-per-epoch", type=int, default=200,
                   help="optimizer steps per epoch (the unit of logging, validation and the "
                        "learning-rate plan)")
    g.add_argument("--batch-size", type=int, default=256,
                   help="vectors per view in one optimizer step (global: split evenly over the "
                        "processes and --accumulate micro-batches)")
    g.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate")
    g.add_argument("--warmup-epochs", type=float, default=1)
    g.add_argument("--weight-decay", type=float, default=1e-4)
    g.add_argument("--valid-fraction", type=float, default=0.1,
                   help="share of clips held out for the validation MSE")
    g = parser.add_argument_group("code books")
    g.add_argument("--kmeans-vectors", type=int, default=100_000,
                   help="k-means sees a uniform sample of at most this many bottleneck vectors "
                        "per view, drawn as the clips stream by (memory grows with this, not "
                        "with the corpus)")
    g.add_argument("--minibatch-above", type=int, default=20_000,
                   help="use MiniBatchKMeans when a view has more vectors than this")
    g.add_argument("--half", action="store_true",
                   help="store the weights as float16 (loading converts back to float32)")
    parser.epilog = (
        "OUT holds logmel.f16 and logmel.pt (the log-mel cache: reused while the files and the "
        "frontend are unchanged, rebuilt otherwise), last.pt (resumable, mid-epoch too), "
        "metrics.csv, curves.png, codebooks.pt and bagofcodes.pt (the model). --workers "
        "processes read the wav files while the cache is built, then draw every step's "
        "vectors from it. --precision bf16 runs the autoencoders under autocast; the views "
        "and the errors stay float32.")


# ---------------------------------------------------------------------------------------------
# data


def audio_files(paths: Sequence[Path]) -> List[Path]:
    """Wav files of HEAR task directories (all splits, 16 kHz), wav folders and wav files."""
    out: List[Path] = []
    for path in paths:
        path = Path(path)
        if (path / "task_metadata.json").is_file():
            task = read_task(path, sample_rate=16000)
            out += sorted(p for split in task.splits for p in task.examples[split])
        elif path.is_dir():
            found = sorted(path.rglob("*.wav"))
            if not found:
                raise FileNotFoundError(f"{path}: no .wav files")
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"--audio {path}: not a task directory, folder or wav file")
    if not out:
        raise FileNotFoundError("--audio: no audio found")
    return out


def spectrograms(files: Sequence[Path], frontend: nn.Module, config: BagOfCodesConfig,
                 device: torch.device) -> Tuple[List[Tensor], float]:
    """Raw log-mel ``(n_mels, frames)`` of each file (at least one second) and total seconds,
    all in memory (for small corpora, e.g. ``scripts/sweep_bagofcodes.py``; the trainer reads
    the cache instead)."""
    out, seconds = [], 0.0
    for path in progress(files, desc="log-mel", leave=False):
        audio = torch.from_numpy(data.read_resampled(path, config.sample_rate))
        seconds += len(audio) / config.sample_rate
        out.append(clip_log_mel(audio, frontend, config, device))
    return out, seconds


def split_clips(n: int, valid_fraction: float) -> Tuple[np.ndarray, np.ndarray]:
    """Training and held-out clip indices (int64): every ``round(1 / valid_fraction)``-th clip is
    held out, at least one; a single clip is both."""
    every = max(2, round(1 / valid_fraction))
    valid = np.arange(every - 1, n, every) if n >= every else np.array([n - 1])
    train = np.setdiff1d(np.arange(n), valid)
    if len(train) == 0:
        return valid, valid
    return train, valid


def window_vectors(w: Tensor, lo: Optional[Tensor], config: BagOfCodesConfig,
                   view: str) -> Tensor:
    """Vectors of ``view`` from windows ``w (n, n_mels, span)`` (float32): for ``pat`` and
    ``fenv`` the 8 bins from ``lo (n,)`` on, for ``o`` the window resized bicubically to
    ``8 x 10`` (antialiased; CPU bfloat16 has no kernel for it, so this stays float32).
    Returns ``(n, dim)``, laid out as :func:`hear_suite.bagofcodes.model.view_vectors`."""
    n = w.shape[0]
    if view in ("pat", "fenv"):
        bins = lo[:, None] + torch.arange(config.patch_bins)
        w = w[torch.arange(n)[:, None], bins]                      # (n, 8, span)
    elif view == "o":
        w = F.interpolate(w[:, None], size=(config.small_bins, config.small_frames),
                          mode="bicubic", align_corners=False, antialias=True)
    return w.reshape(n, config.input_dims[view])


def draw_views(mels: MelCache, clips: np.ndarray, config: BagOfCodesConfig, n: int,
               rng: np.random.Generator, mean: float, std: float) -> Batch:
    """``n`` standardised vectors of every view at random positions of ``clips``: random clip,
    random start frame and, for ``pat``/``fenv``, random start bin; only those windows are read.
    ``{view: (n, dim)}`` float32 on the CPU."""
    out: Batch = {}
    for view in VIEWS:
        span = config.spans[view]
        clip = clips[rng.integers(0, len(clips), n)]
        start = rng.integers(0, mels.frames[clip] - span + 1)       # every clip >= 1 s
        w = torch.from_numpy(mels.windows(clip, start, span)).transpose(1, 2)
        lo = None
        if view in ("pat", "fenv"):
            lo = torch.from_numpy(rng.integers(0, config.n_mels - config.patch_bins + 1, n))
        out[view] = window_vectors((w - mean) / std, lo, config, view)
    return out


class StepBatches(Dataset):
    """``dataset[(epoch, step)]`` -> the micro-batches of one optimizer step on this rank: a
    list of ``accumulate`` batches ``{view: (micro, dim)}``.

    The step's ``accumulate x micro`` vectors per view are drawn (:func:`draw_views`) from
    ``clips`` with a generator seeded by ``(seed, rank, epoch, step)``, then split: a pure
    function of the key, whichever worker draws it and whether the run was resumed."""

    def __init__(self, mels: MelCache, clips: np.ndarray, config: BagOfCodesConfig, *,
                 mean: float, std: float, micro: int, accumulate: int, seed: int,
                 rank: int) -> None:
        self.mels, self.clips, self.config = mels, clips, config
        self.mean, self.std = mean, std
        self.micro, self.accumulate = micro, accumulate
        self.seed, self.rank = seed, rank

    def __getitem__(self, key: Tuple[int, int]) -> List[Batch]:
        epoch, step = key
        rng = np.random.default_rng(derive_seed(self.seed, self.rank, epoch, step))
        batch = draw_views(self.mels, self.clips, self.config, self.micro * self.accumulate, rng,
                           self.mean, self.std)
        return [{v: x[k * self.micro:(k + 1) * self.micro] for v, x in batch.items()}
                for k in range(self.accumulate)]

    def epoch(self, epoch: int, first_step: int, steps: int, *, workers: int,
              device: torch.device) -> Iterable[List[Batch]]:
        """Steps ``first_step .. steps - 1`` of ``epoch``, drawn by ``workers`` processes."""
        keys = [[(epoch, s)] for s in range(first_step, steps)]
        return data.loader(self, keys, workers=workers, device=device, collate_fn=cache.only)


# ---------------------------------------------------------------------------------------------
# autoencoders


class AutoEncoders(nn.Module):
    """The four autoencoders: ``forward({view: (B, dim)})`` -> reconstructions
    ``{view: (B, dim)}``."""

    def __init__(self, config: BagOfCodesConfig) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({v: build_encoder(config, v) for v in VIEWS})
        self.decoders = nn.ModuleDict({v: build_decoder(config, v) for v in VIEWS})

    def forward(self, batch: Batch) -> Batch:
        return {v: self.decoders[v](self.encoders[v](batch[v])) for v in VIEWS}


def view_errors(reconstructions: Batch, batch: Batch) -> Tensor:
    """Mean-squared reconstruction error of each view, in float32: ``(4,)``."""
    return torch.stack([F.mse_loss(reconstructions[v].float(), batch[v]) for v in VIEWS])


def loss_function(forward: nn.Module, args: argparse.Namespace, device: torch.device
                  ) -> Callable[[Batch], Tuple[Tensor, int, List[float]]]:
    """The :class:`Stepper` loss of a micro-batch: the sum of the four views' MSE
    (autoencoders under ``--precision``); extra sums: each view's MSE x vectors."""
    def loss_of(micro: Batch) -> Tuple[Tensor, int, List[float]]:
        batch = {v: x.to(device, non_blocking=True) for v, x in micro.items()}
        with autocast(device, args.precision):
            reconstructions = forward(batch)
        errors = view_errors(reconstructions, batch)
        n = len(batch[VIEWS[0]])
        return errors.sum(), n, (errors.detach() * n).tolist()

    return loss_of


@torch.no_grad()
def valid_losses(ae: AutoEncoders, batch: Batch) -> Tensor:
    """Per-view MSE ``(4,)`` of the held-out vectors, in eval mode and float32."""
    ae.eval()
    return view_errors(ae(batch), batch).cpu()


# ---------------------------------------------------------------------------------------------
# run


def model_config(args: argparse.Namespace) -> BagOfCodesConfig:
    return BagOfCodesConfig(width=args.width, depth=args.depth, compression=args.compression,
                            dropout=args.dropout, codebook_size=args.codebook_size)


def check_args(args: argparse.Namespace, world_size: int) -> None:
    problems: List[str] = []
    try:
        model_config(args)
    except ValueError as e:
        problems.append(str(e))
    if args.epochs < 0 or args.steps_per_epoch < 1:
        problems.append("--epochs must be >= 0 and --steps-per-epoch >= 1")
    problems += run_argument_problems(args, world_size)
    if args.lr <= 0 or args.warmup_epochs < 0 or args.weight_decay < 0:
        problems.append("--lr must be > 0, --warmup-epochs and --weight-decay >= 0")
    if not 0.0 < args.valid_fraction < 1.0:
        problems.append("--valid-fraction must be in (0, 1)")
    if args.kmeans_vectors < args.codebook_size:
        problems.append("--kmeans-vectors must be >= --codebook-size")
    if problems:
        raise SystemExit("hear-suite train bagofcodes: " + "; ".join(problems))


def main(args: argparse.Namespace) -> int:
    return run_distributed(args, check_args, run)


def open_data(args: argparse.Namespace, config: BagOfCodesConfig, info: DistInfo
              ) -> Tuple[MelCache, np.ndarray, np.ndarray, float, float]:
    """The log-mel cache in ``--out`` (reused or built), the training and held-out clip indices
    and the training clips' mean and standard deviation."""
    t0 = time.perf_counter()
    files = audio_files(args.audio)
    frontend = build_frontend(config).to(info.device).eval()
    mels, built = cache.open_or_build(Path(args.out), files, config, frontend,
                                      device=info.device, workers=args.workers,
                                      is_main=info.is_main)
    train_ids, valid_ids = split_clips(len(mels), args.valid_fraction)
    mean, std = mels.statistics(train_ids)
    size = mels.offsets[-1] * mels.row_bytes / 2 ** 30
    log(f"{len(mels)} clips, {mels.seconds / 60:.1f} min of audio ({len(train_ids)} "
                 f"train, {len(valid_ids)} valid); log-mel cache {mels.path} ({size:.2f} GiB) "
                 f"{'built' if built else 'reused'} in {time.perf_counter() - t0:.1f} s; "
                 f"{info.world_size} process(es) on {info.device}")
    return mels, train_ids, valid_ids, mean, std


def run(args: argparse.Namespace, info: DistInfo) -> Dict[str, Any]:
    """Both stages (resuming what is done). Returns the provenance of ``OUT/bagofcodes.pt``
    (empty on ranks other than 0)."""
    out = Path(args.out)
    config = model_config(args)
    run_dir = RunDir(out, outputs=(WEIGHTS, CODEBOOKS))
    resume_from = run_dir.resolve(args.resume_mode)
    mels, train_ids, valid_ids, mean, std = open_data(args, config, info)
    valid_rng = np.random.default_rng(derive_seed(args.seed, -1))
    valid_batch = {v: x.to(info.device) for v, x in draw_views(
        mels, valid_ids, config, VALID_VECTORS, valid_rng, mean, std).items()}

    seed_everything(args.seed)  # same initial weights on every rank
    ae = AutoEncoders(config).to(info.device)
    seed_everything(args.seed, info.rank)  # per-rank dropout streams
    optimizer = torch.optim.AdamW(ae.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = WarmupDecayLR(
        optimizer, warmup_steps=round(args.warmup_epochs * args.steps_per_epoch),
        total_steps=max(1, args.epochs * args.steps_per_epoch))
    key = {"config": config.to_dict(), "data": mels.key["files_sha256"],
           "valid_fraction": args.valid_fraction, "mel_mean": mean, "mel_std": std}
    start_epoch, step, elapsed, state = 0, 0, 0.0, None
    if resume_from is not None:
        state = resume(resume_from, key, model=ae, optimizer=optimizer,
                                scheduler=scheduler, info=info, seed=args.seed)
        start_epoch, step, elapsed = state["epoch"], state["step"], state["extra"]["elapsed_s"]
    position = EpochPosition.from_state(state)
    metrics = MetricsLog(run_dir.metrics) if info.is_main else None
    if metrics is not None:
        metrics.truncate(start_epoch)

    def save_state(epoch_done: int, at: EpochPosition, at_step: int) -> None:
        save_run_state(
            run_dir.last, info=info, model=ae, optimizer=optimizer, scheduler=scheduler,
            epoch=epoch_done, step=at_step, position=at, best_metric=None,
            extra={**key, "elapsed_s": elapsed, "epochs": args.epochs,
                   "world_size": info.world_size})

    batches = StepBatches(mels, train_ids, config, mean=mean, std=std,
                          micro=micro_batch_size(args, info.world_size),
                          accumulate=args.accumulate, seed=args.seed, rank=info.rank)
    forward = compiled(wrap_ddp(ae, info), args.compile)
    stepper = Stepper(forward, optimizer, scheduler)
    loss_of = loss_function(forward, args, info.device)
    epochs_done = start_epoch
    for epoch in range(start_epoch, args.epochs):
        if stop_now(step, args):
            break
        t1 = time.perf_counter()
        forward.train()
        groups = batches.epoch(epoch, position.steps, args.steps_per_epoch,
                               workers=args.workers, device=info.device)
        position, step, lr, complete = train_epoch(
            groups, stepper, loss_of, args=args, epoch=epoch,
            steps_per_epoch=args.steps_per_epoch, position=position, step=step,
            save=lambda at_step, at: save_state(epoch, at, at_step))
        elapsed += time.perf_counter() - t1
        if not complete:
            break
        train_mse = epoch_means(position)[1:]
        position = EpochPosition()
        valid_mse = valid_losses(ae, valid_batch)
        seconds = time.perf_counter() - t1
        epochs_done = epoch + 1
        if metrics is not None:
            row = {"epoch": epoch + 1, "step": step, "lr": lr, "time_s": seconds}
            row.update({f"train_{v}": float(train_mse[i]) for i, v in enumerate(VIEWS)})
            row.update({f"valid_{v}": float(valid_mse[i]) for i, v in enumerate(VIEWS)})
            metrics.append(row)
            plot_curves(metrics.rows, run_dir.curves, CURVES)
        save_state(epoch + 1, position, step)
        log(f"epoch {epoch + 1}/{args.epochs}: train MSE "
                     + " ".join(f"{v} {float(train_mse[i]):.3f}" for i, v in enumerate(VIEWS))
                     + " | valid " + " ".join(f"{v} {float(valid_mse[i]):.3f}"
                                              for i, v in enumerate(VIEWS))
                     + f" | {seconds:.1f} s")
    if stop_now(step, args):
        log(f"--max-steps {args.max_steps}: stopped at step {step}; code books of these "
                     f"weights follow; rerun without it to continue from {run_dir.last}")
    digest = check_replicas_identical(ae)
    if not info.is_main:  # k-means is rank 0's alone: wait for its file, then leave together
        wait_for_file(out / WEIGHTS, since=time.time())
        barrier()
        return {}
    valid_mse = valid_losses(ae, valid_batch)
    books = fit_codebooks(ae, mels, train_ids, config, args, mean=mean, std=std,
                          device=info.device, path=out / CODEBOOKS)
    model = BagOfCodes(config)
    model.encoders.load_state_dict(ae.encoders.state_dict())
    model.mel_mean.fill_(mean)
    model.mel_std.fill_(std)
    for v in VIEWS:
        model.codebooks[v].centroids.copy_(books["centroids"][v])
    provenance = {
        "trainer": __name__,
        "command": shlex.join(sys.argv),
        "audio": [str(Path(p).resolve()) for p in args.audio],
        "clips": len(mels), "audio_minutes": round(mels.seconds / 60, 2),
        "epochs": epochs_done, "steps": step, "seed": args.seed,
        "valid_mse": {v: float(valid_mse[i]) for i, v in enumerate(VIEWS)},
        "kmeans": books["summary"],
        "train_time_s": round(elapsed + books["seconds"], 1),
        "autoencoder_time_s": round(elapsed, 1), "kmeans_time_s": round(books["seconds"], 1),
        "world_size": info.world_size, "device": info.device.type,
        "precision": args.precision, "log_mel_cache": cache.DTYPE.name,
        "autoencoder_weights_sha256": digest,
        "torch_version": str(torch.__version__), "hear_suite_version": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "args": {**plain_args(args), "audio": [str(p) for p in args.audio]},
    }
    save_bagofcodes(out / WEIGHTS, model.cpu(), half=args.half, provenance=provenance)
    log("code books: " + ", ".join(
        f"{v} {s['codes_used']}/{config.codebook_size} used ({s['algorithm']}, "
        f"{s['vectors']} vectors)" for v, s in books["summary"].items())
        + f" -> {out / WEIGHTS}")
    barrier()  # every rank leaves the process group together (gloo aborts otherwise)
    return provenance


def wait_for_file(path: Path, *, since: float) -> None:
    """Return once ``path`` has been (atomically) written at or after ``since`` (seconds since
    the epoch). The other ranks wait for rank 0's k-means this way rather than at a collective,
    whose timeout (10 minutes under NCCL) a long k-means could outlast."""
    while not (path.is_file() and path.stat().st_mtime >= since - 1.0):
        time.sleep(cache.POLL_S)
