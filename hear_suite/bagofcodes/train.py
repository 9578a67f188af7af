"""``hear-suite train bagofcodes``: unsupervised training of the bag-of-codes model (Verma).

    hear-suite make-corpus general --out data --clips 1200      # speech, music, noise, events
    hear-suite train bagofcodes --audio data/general-v1-full --out RUN [--width 2048 ...]
    torchrun --nproc_per_node=N -m hear_suite.cli train bagofcodes --audio ... --out RUN

Stage 1, autoencoders (DDP under torchrun): the clips' log-mel spectrograms are computed once on
the device and standardised with their global mean and standard deviation (stored in the model).
Every step draws, for each of the four views, ``--batch-size`` vectors at random positions (random
clip, start frame and, for ``pat``/``fenv``, start mel bin: the paper's sampling), and takes one
AdamW step on the sum of the four mean-squared reconstruction errors (dropout 0.5 in encoder and
decoder). An "epoch" is ``--steps-per-epoch`` steps; the per-view MSE on a fixed set of vectors
from held-out clips is logged each epoch (``metrics.csv``, ``curves.png``) and ``last.pt`` is
written (a rerun resumes from it, bit-identically with the same number of processes).

Stage 2, code books (rank 0): every clip's view vectors on a 10-frame grid are encoded, at most
``--kmeans-vectors`` per view are drawn, and k-means with ``--codebook-size`` clusters is run per
view (scikit-learn ``KMeans``; ``MiniBatchKMeans`` above ``--minibatch-above`` vectors), seeded.
The result goes to ``codebooks.pt`` (kept on resume) and the model to ``OUT/bagofcodes.pt``.

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
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hear_suite import checkpoint, training
from hear_suite.bagofcodes.io import save_bagofcodes
from hear_suite.bagofcodes.model import (VIEWS, BagOfCodes, BagOfCodesConfig, build_decoder,
                                         build_encoder, build_frontend, random_view_vectors,
                                         view_vectors)
from hear_suite.tasks import load_wav, read_task
from hear_suite.version import __version__

WEIGHTS, CODEBOOKS = "bagofcodes.pt", "codebooks.pt"
CURVES = {"train MSE": [f"train_{v}" for v in VIEWS], "valid MSE": [f"valid_{v}" for v in VIEWS],
          "learning rate": ["lr"]}
VALID_VECTORS = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio", type=Path, nargs="+", required=True,
                        help="HEAR task directories and/or folders of wav files")
    training.add_run_arguments(parser)
    g = parser.add_argument_group("model (defaults: the paper's)")
    g.add_argument("--width", type=int, default=2048, help="autoencoder hidden units")
    g.add_argument("--depth", type=int, default=3, help="linear layers of encoder and decoder")
    g.add_argument("--compression", type=int, default=10, help="F: bottleneck = input / F")
    g.add_argument("--dropout", type=float, default=0.5)
    g.add_argument("--codebook-size", type=int, default=256, help="D, clusters per view")
    g = parser.add_argument_group("autoencoder training")
    g.add_argument("--epochs", type=int, default=20)
    g.add_argument("--steps-per-epoch", type=int, default=200)
    g.add_argument("--batch-size", type=int, default=256,
                   help="vectors per view per step (global: split over the processes)")
    g.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate")
    g.add_argument("--warmup-epochs", type=float, default=1)
    g.add_argument("--weight-decay", type=float, default=1e-4)
    g.add_argument("--valid-fraction", type=float, default=0.1,
                   help="share of clips held out for the validation MSE")
    g = parser.add_argument_group("code books")
    g.add_argument("--kmeans-vectors", type=int, default=100_000,
                   help="at most this many bottleneck vectors per view for k-means")
    g.add_argument("--minibatch-above", type=int, default=20_000,
                   help="use MiniBatchKMeans when a view has more vectors than this")
    g.add_argument("--half", action="store_true",
                   help="store the weights as float16 (loading converts back to float32)")


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


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    audio = load_wav(path)
    sr = sf.info(str(path)).samplerate
    if sr != sample_rate:
        from hear_suite.corpora.speech import resample

        audio = resample(audio, sr, sample_rate)
    return audio


@torch.no_grad()
def spectrograms(files: Sequence[Path], frontend: nn.Module, config: BagOfCodesConfig,
                 device: torch.device) -> Tuple[List[Tensor], float]:
    """Raw log-mel ``(n_mels, frames)`` of each file (at least one second) and total seconds."""
    out, seconds = [], 0.0
    min_len = (config.unit_frames - 1) * config.hop_length + config.win_length
    for path in training.progress(files, desc="log-mel", leave=False):
        audio = torch.from_numpy(read_audio(path, config.sample_rate)).float()
        seconds += len(audio) / config.sample_rate
        audio = F.pad(audio, (0, max(0, min_len - len(audio))))
        out.append(frontend(audio[None].to(device))[0])
    return out, seconds


def stack(specs: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
    """Right-pad to a common length: ``(N, n_mels, T)`` and the true lengths ``(N,)``."""
    lengths = torch.tensor([s.shape[1] for s in specs])
    x = specs[0].new_zeros(len(specs), specs[0].shape[0], int(lengths.max()))
    for i, s in enumerate(specs):
        x[i, :, :s.shape[1]] = s
    return x, lengths


# ---------------------------------------------------------------------------------------------
# autoencoders


class AutoEncoders(nn.Module):
    """The four autoencoders: ``forward({view: (B, dim)})`` -> per-view MSE ``(4,)``."""

    def __init__(self, config: BagOfCodesConfig) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({v: build_encoder(config, v) for v in VIEWS})
        self.decoders = nn.ModuleDict({v: build_decoder(config, v) for v in VIEWS})

    def forward(self, batch: Dict[str, Tensor]) -> Tensor:
        return torch.stack([F.mse_loss(self.decoders[v](self.encoders[v](batch[v])), batch[v])
                            for v in VIEWS])


def sample_batch(x: Tensor, lengths: Tensor, config: BagOfCodesConfig, n: int,
                 generator: torch.Generator, device: torch.device) -> Dict[str, Tensor]:
    return {v: random_view_vectors(x, lengths, config, v, n, generator).to(device)
            for v in VIEWS}


def train_one_epoch(ae: nn.Module, x: Tensor, lengths: Tensor, config: BagOfCodesConfig, *,
                    optimizer: torch.optim.Optimizer, scheduler: training.WarmupDecayLR,
                    args: argparse.Namespace, info: training.DistInfo,
                    epoch: int) -> Tuple[Tensor, float]:
    """``--steps-per-epoch`` steps; per-view mean train MSE over all ranks and the last lr."""
    ae.train()
    gen = torch.Generator().manual_seed(training.derive_seed(args.seed, info.rank, epoch))
    per_rank = args.batch_size // info.world_size
    sums = torch.zeros(len(VIEWS), dtype=torch.float64, device=info.device)
    lr = float("nan")
    bar = training.progress(range(args.steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}",
                            leave=False)
    for step in bar:
        losses = ae(sample_batch(x, lengths, config, per_rank, gen, info.device))
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        sums += losses.detach().double()
        if (step + 1) % 20 == 0 and hasattr(bar, "set_postfix"):
            bar.set_postfix(mse=f"{(sums.sum() / (step + 1)).item():.3f}")
    total = training.all_reduce_sum(sums) / (args.steps_per_epoch * info.world_size)
    return total.cpu(), lr


@torch.no_grad()
def valid_losses(ae: AutoEncoders, batch: Dict[str, Tensor]) -> Tensor:
    ae.eval()
    return ae(batch).cpu()


# ---------------------------------------------------------------------------------------------
# code books


@torch.no_grad()
def bottleneck_vectors(encoders: nn.ModuleDict, specs: Sequence[Tensor],
                       config: BagOfCodesConfig, view: str, step: int = 10,
                       batch: int = 4096) -> np.ndarray:
    """Encoded vectors of ``view`` every ``step`` frames of every spectrogram: ``(n, b)``."""
    out = []
    for s in specs:
        vec = view_vectors(s[None], config, view, step).reshape(-1, config.input_dims[view])
        for chunk in vec.split(batch):
            out.append(encoders[view](chunk).cpu())
    return torch.cat(out).numpy().astype(np.float64)


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


# ---------------------------------------------------------------------------------------------
# run


def check_args(args: argparse.Namespace, world_size: int) -> None:
    problems: List[str] = []
    if args.epochs < 0 or args.steps_per_epoch < 1:
        problems.append("--epochs must be >= 0 and --steps-per-epoch >= 1")
    if args.batch_size < 1 or args.batch_size % world_size:
        problems.append(f"--batch-size {args.batch_size} must be a positive multiple of the "
                        f"number of processes ({world_size})")
    if args.lr <= 0 or args.warmup_epochs < 0 or args.weight_decay < 0:
        problems.append("--lr must be > 0, --warmup-epochs and --weight-decay >= 0")
    if not 0.0 < args.valid_fraction < 1.0:
        problems.append("--valid-fraction must be in (0, 1)")
    if args.kmeans_vectors < args.codebook_size:
        problems.append("--kmeans-vectors must be >= --codebook-size")
    if problems:
        raise SystemExit("hear-suite train bagofcodes: " + "; ".join(problems))


def main(args: argparse.Namespace) -> int:
    return training.run_distributed(args, check_args, run)


def run(args: argparse.Namespace, info: training.DistInfo) -> Dict[str, Any]:
    """Both stages (resuming what is done). Returns the provenance of ``OUT/bagofcodes.pt``."""
    out = Path(args.out)
    config = BagOfCodesConfig(width=args.width, depth=args.depth, compression=args.compression,
                              dropout=args.dropout, codebook_size=args.codebook_size)
    run_dir = training.RunDir(out, outputs=(WEIGHTS, CODEBOOKS))
    resume_from = run_dir.resolve(args.resume_mode)

    t0 = time.perf_counter()
    files = audio_files(args.audio)
    frontend = build_frontend(config).to(info.device).eval()
    specs, seconds = spectrograms(files, frontend, config, info.device)
    every = max(2, round(1 / args.valid_fraction))
    valid_ids = set(range(every - 1, len(specs), every)) or {len(specs) - 1}
    if len(valid_ids) == len(specs):  # a single clip: validate on it as well
        valid_ids = set()
    train_specs = [s for i, s in enumerate(specs) if i not in valid_ids]
    valid_specs = [s for i, s in enumerate(specs) if i in valid_ids] or train_specs
    frames = torch.cat([s.reshape(-1) for s in train_specs])
    mean, std = frames.mean().item(), frames.std().item()
    del frames
    train_specs = [(s - mean) / std for s in train_specs]
    valid_specs = [(s - mean) / std for s in valid_specs]
    x, lengths = stack(train_specs)
    vx, vlengths = stack(valid_specs)
    training.log(f"{len(files)} clips, {seconds / 60:.1f} min of audio ({len(train_specs)} train, "
                 f"{len(valid_specs)} valid), log-mel in {time.perf_counter() - t0:.1f} s; "
                 f"{info.world_size} process(es) on {info.device}")
    valid_batch = sample_batch(vx, vlengths, config, VALID_VECTORS,
                               torch.Generator().manual_seed(training.derive_seed(args.seed, -1)),
                               info.device)

    training.seed_everything(args.seed)  # same initial weights on every rank
    ae = AutoEncoders(config).to(info.device)
    training.seed_everything(args.seed, info.rank)  # per-rank dropout streams
    optimizer = torch.optim.AdamW(ae.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = training.WarmupDecayLR(
        optimizer, warmup_steps=round(args.warmup_epochs * args.steps_per_epoch),
        total_steps=max(1, args.epochs * args.steps_per_epoch))
    extra_key = {"config": config.to_dict(), "mel_mean": mean, "mel_std": std,
                 "files": len(files)}
    start_epoch, step, elapsed = 0, 0, 0.0
    if resume_from is not None:
        state = training.resume(resume_from, extra_key, model=ae, optimizer=optimizer,
                                scheduler=scheduler, info=info, seed=args.seed)
        start_epoch, step, elapsed = state["epoch"], state["step"], state["extra"]["elapsed_s"]
    metrics = training.MetricsLog(run_dir.metrics) if info.is_main else None
    if metrics is not None:
        metrics.truncate(start_epoch)

    ddp = training.wrap_ddp(ae, info)
    for epoch in range(start_epoch, args.epochs):
        t1 = time.perf_counter()
        train_mse, lr = train_one_epoch(ddp, x, lengths, config, optimizer=optimizer,
                                        scheduler=scheduler, args=args, info=info, epoch=epoch)
        step += args.steps_per_epoch
        valid_mse = valid_losses(ae, valid_batch)
        seconds_epoch = time.perf_counter() - t1
        elapsed += seconds_epoch
        rngs = training.all_gather_objects(training.rng_state(info.device))
        if metrics is not None:
            row = {"epoch": epoch + 1, "step": step, "lr": lr, "time_s": seconds_epoch}
            row.update({f"train_{v}": float(train_mse[i]) for i, v in enumerate(VIEWS)})
            row.update({f"valid_{v}": float(valid_mse[i]) for i, v in enumerate(VIEWS)})
            metrics.append(row)
            training.plot_curves(metrics.rows, run_dir.curves, CURVES)
            training.save_training_state(
                run_dir.last, model=ae, optimizer=optimizer, scheduler=scheduler,
                epoch=epoch + 1, step=step, rng=rngs, best_metric=None,
                extra={**extra_key, "elapsed_s": elapsed, "epochs": args.epochs,
                       "world_size": info.world_size})
        training.log(f"epoch {epoch + 1}/{args.epochs}: train MSE "
                     + " ".join(f"{v} {float(train_mse[i]):.3f}" for i, v in enumerate(VIEWS))
                     + " | valid " + " ".join(f"{v} {float(valid_mse[i]):.3f}"
                                              for i, v in enumerate(VIEWS))
                     + f" | {seconds_epoch:.1f} s")
    digest = training.check_replicas_identical(ae)
    valid_mse = valid_losses(ae, valid_batch)

    provenance: Dict[str, Any] = {}
    if info.is_main:
        ae.eval()
        model = BagOfCodes(config)
        model.encoders.load_state_dict(ae.encoders.state_dict())
        model.mel_mean.fill_(mean)
        model.mel_std.fill_(std)
        books = fit_codebooks(ae, train_specs, config, args, out / CODEBOOKS)
        for v in VIEWS:
            model.codebooks[v].centroids.copy_(books["centroids"][v])
        provenance = {
            "trainer": __name__,
            "command": shlex.join(sys.argv),
            "audio": [str(Path(p).resolve()) for p in args.audio],
            "clips": len(files), "audio_minutes": round(seconds / 60, 2),
            "epochs": max(start_epoch, args.epochs), "steps": step, "seed": args.seed,
            "valid_mse": {v: float(valid_mse[i]) for i, v in enumerate(VIEWS)},
            "kmeans": books["summary"],
            "train_time_s": round(elapsed + books["seconds"], 1),
            "autoencoder_time_s": round(elapsed, 1), "kmeans_time_s": round(books["seconds"], 1),
            "world_size": info.world_size, "device": info.device.type,
            "autoencoder_weights_sha256": digest,
            "torch_version": str(torch.__version__), "hear_suite_version": __version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "args": {**training.plain_args(args), "audio": [str(p) for p in args.audio]},
        }
        save_bagofcodes(out / WEIGHTS, model.cpu(), half=args.half, provenance=provenance)
        training.log("code books: " + ", ".join(
            f"{v} {s['codes_used']}/{config.codebook_size} used ({s['algorithm']}, "
            f"{s['vectors']} vectors)" for v, s in books["summary"].items())
            + f" -> {out / WEIGHTS}")
    training.barrier()
    return provenance


def fit_codebooks(ae: AutoEncoders, specs: Sequence[Tensor], config: BagOfCodesConfig,
                  args: argparse.Namespace, path: Path) -> Dict[str, Any]:
    """k-means per view, or the result already in ``path`` when it was made for the same
    autoencoders (same config, seed and weights)."""
    key = {"config": config.to_dict(), "seed": args.seed, "vectors": args.kmeans_vectors,
           "weights": training.weights_digest(ae.encoders)}
    if path.is_file():
        saved = checkpoint.load_file(path)
        if saved.get("key") == key:
            training.log(f"code books from {path}")
            return saved
    t0 = time.perf_counter()
    centroids, summary = {}, {}
    for i, v in enumerate(training.progress(VIEWS, desc="k-means", leave=False)):
        z = bottleneck_vectors(ae.encoders, specs, config, v)
        c, summary[v] = fit_codebook(z, size=config.codebook_size,
                                     seed=training.derive_seed(args.seed, i),
                                     max_vectors=args.kmeans_vectors,
                                     minibatch_above=args.minibatch_above)
        centroids[v] = torch.from_numpy(c)
    books = {"key": key, "centroids": centroids, "summary": summary,
             "seconds": time.perf_counter() - t0}
    checkpoint.save_atomic(books, path)
    return books
