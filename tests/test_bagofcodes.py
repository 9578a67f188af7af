"""hear_suite.bagofcodes: histogram invariants, cumulative-sum windows against direct counting,
determinism, edges and short clips, checkpoints and options, bad input, the shipped weights, and
the trainer (outputs, exact resume, two torchrun processes)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import hear_suite.bagofcodes as boc
from hear_suite import checkpoint, cli, training
from hear_suite.bagofcodes.embedder import BagOfCodesEmbedder, windowed_counts
from hear_suite.bagofcodes.io import load_bagofcodes, save_bagofcodes
from hear_suite.bagofcodes.model import VIEWS, BagOfCodes, BagOfCodesConfig, view_vectors
from hear_suite.tasks import TaskWriter

SR = 16000
D = 16
REPO = Path(__file__).resolve().parent.parent
PER_SECOND = [120, 12, 10, 1]


def noise(n, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, length, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def random_model() -> BagOfCodes:
    """Small autoencoders; code books drawn around the spread of the bottleneck values of noise
    (generic positions: no two centroids close enough for rounding to decide a code)."""
    torch.manual_seed(0)
    model = BagOfCodes(BagOfCodesConfig(width=32, codebook_size=D)).eval()
    model.mel_mean.fill_(-6.0)
    model.mel_std.fill_(4.0)
    x = model.log_mel(noise(2, 3 * SR))
    with torch.no_grad():
        for v in VIEWS:
            z = model.encode(v, view_vectors(x, model.config, v, 10))
            z = z.reshape(-1, model.config.bottlenecks[v])
            c = z.mean(0) + z.std(0) * torch.randn(D, z.shape[1])
            model.codebooks[v].centroids.copy_(c)
    return model


@pytest.fixture(scope="module")
def embedder(random_model) -> BagOfCodesEmbedder:
    return BagOfCodesEmbedder(random_model)


@pytest.fixture(scope="module")
def model_file(random_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("boc") / "bagofcodes.pt"
    save_bagofcodes(path, random_model, provenance={"test": True})
    return path


def per_view(hist: torch.Tensor) -> torch.Tensor:
    return hist.reshape(*hist.shape[:-1], len(VIEWS), -1).sum(-1)


# ---------------------------------------------------------------------------------------------
# histograms and windows


def test_one_second_histogram_counts(random_model, embedder):
    x = embedder.frames(noise(3, SR), 0, 100)
    hist = random_model.unit_histograms(x)
    assert hist.shape == (3, 4 * D)
    assert per_view(hist).tolist() == [PER_SECOND] * 3
    # one second of audio: the scene embedding is exactly that histogram
    assert torch.equal(embedder.scene_embeddings(noise(3, SR)), hist)
    emb, _ = embedder.timestamp_embeddings(noise(3, SR))
    assert (per_view(emb) == torch.tensor(PER_SECOND, dtype=torch.float32)).all()


@pytest.mark.parametrize("length", [1, 8000, SR, SR + 1, 5 * SR + 7])
def test_scene_is_per_second_counts_for_any_length(embedder, length):
    scene = embedder.scene_embeddings(noise(2, length, seed=length % 97))
    assert scene.shape == (2, 4 * D) and scene.dtype == torch.float32
    assert torch.allclose(per_view(scene), torch.tensor(PER_SECOND, dtype=torch.float32))


def test_windowed_counts_equal_naive_sums():
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(0, 5, (2, 37, 6), generator=g).float()
    starts = torch.tensor([0, 3, 4, 10, 17])
    got = windowed_counts(counts, starts, stride=4, n_blocks=5)
    want = torch.stack([counts[:, s:s + 4 * 5:4].sum(1) for s in starts.tolist()], 1)
    assert torch.equal(got, want)


@pytest.mark.parametrize("hop_ms,window_ms,seconds", [(50, 1000, 2), (10, 1000, 1.6),
                                                      (20, 300, 2), (50, 1500, 3)])
def test_cumulative_sum_windows_equal_direct_counts(random_model, hop_ms, window_ms, seconds):
    emb = BagOfCodesEmbedder(random_model, timestamp_hop_ms=hop_ms, timestamp_window_ms=window_ms)
    audio = noise(2, int(seconds * SR) + 555, seed=hop_ms)
    x = emb.frames(audio, 0, emb.num_frames(audio.shape[1]) + emb.window_frames)
    starts = emb.window_starts(audio.shape[1])
    fast = emb.window_histograms(x, starts)
    assert torch.equal(fast, emb.direct_window_histograms(x, starts))
    units = window_ms // 1000
    assert (per_view(fast) == torch.tensor([12 * window_ms // 100, 12 * units,
                                            window_ms // 100, units], dtype=torch.float32)).all()


@pytest.mark.parametrize("seconds", [1.07, 1.98, 4.0])
def test_timestamps_pass_the_later_validator_checks(embedder, seconds):
    """hearvalidator 2021.0.6: hops within 1 ms of the mean, last timestamp not past the end
    (and not earlier than one hop before it), first one within a hop."""
    length = int(seconds * SR)
    emb, ts = boc.get_timestamp_embeddings(noise(2, length), embedder)
    hops = ts[:, 1:] - ts[:, :-1]
    assert (hops - hops.mean()).abs().max() < 1 and hops.max() <= 50
    end = 1000 * length / SR
    assert ts[0, 0] <= 50 and end - 50 <= ts[0, -1] <= end


def test_timestamps_edges_and_blocks(random_model, embedder):
    audio = noise(2, 4 * SR + 321)
    emb, ts = embedder.timestamp_embeddings(audio)
    assert ts.shape == emb.shape[:2] and emb.shape[2] == 4 * D
    assert torch.equal(ts[0], 50.0 * torch.arange(ts.shape[1], dtype=torch.float32))
    assert ts[0, -1] <= 1000 * audio.shape[1] / SR < ts[0, -1] + 50
    starts = embedder.window_starts(audio.shape[1])
    assert starts[0] == 0 and starts.max() + 100 <= embedder.num_frames(audio.shape[1])
    assert torch.equal(starts[20:30], torch.arange(20, 30) * 5 - 50)  # centred in the middle
    # small blocks (many cumulative-sum restarts) give the same result
    small = BagOfCodesEmbedder(random_model, max_frames=150)
    assert torch.equal(small.timestamp_embeddings(audio)[0], emb)
    assert torch.equal(small.scene_embeddings(audio), embedder.scene_embeddings(audio))


def test_codes_deterministic_and_batch_independent(embedder):
    audio = noise(4, 2 * SR + 999, seed=3)
    emb, _ = embedder.timestamp_embeddings(audio)
    scene = embedder.scene_embeddings(audio)
    assert torch.equal(embedder.timestamp_embeddings(audio)[0], emb)
    for i in range(4):
        assert torch.equal(embedder.timestamp_embeddings(audio[i:i + 1])[0][0], emb[i])
        assert torch.equal(embedder.scene_embeddings(audio[i:i + 1])[0], scene[i])


def test_short_clips(embedder):
    for length in (1, 160, 8000):
        emb, ts = embedder.timestamp_embeddings(noise(2, length))
        assert emb.shape[1] == ts.shape[1] == length * 1000 // (SR * 50) + 1
        # shorter than the window: every timestamp sees the whole (zero-padded) clip
        assert (emb == emb[:, :1]).all()


# ---------------------------------------------------------------------------------------------
# checkpoints, options, bad input


def test_checkpoint_round_trip_and_half_storage(random_model, model_file, embedder, tmp_path):
    audio = noise(2, 30000)
    model = boc.load_model(str(model_file))
    assert torch.equal(boc.get_scene_embeddings(audio, model),
                       embedder.scene_embeddings(audio))
    stored = checkpoint.load_checkpoint(model_file, "bagofcodes")["state_dict"]
    assert not any(k.startswith("frontend.") for k in stored)
    half = tmp_path / "half.pt"
    save_bagofcodes(half, random_model, half=True)
    assert half.stat().st_size < model_file.stat().st_size
    loaded = load_bagofcodes(half)
    assert all(v.dtype == torch.float32 for v in loaded.state_dict().values()
               if v.is_floating_point())
    emb = boc.load_model(str(half))
    assert boc.get_scene_embeddings(audio, emb).shape == (2, 4 * D)


def test_bad_checkpoints_and_options(tmp_path, model_file):
    other = tmp_path / "other.pt"
    checkpoint.save_checkpoint(other, family="kwmlp", config={}, state_dict={})
    with pytest.raises(ValueError, match="'kwmlp' model, not a 'bagofcodes'"):
        boc.load_model(str(other))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(model_file.read_bytes()[:5000])
    with pytest.raises(RuntimeError, match="truncated or corrupt"):
        boc.load_model(str(truncated))
    with pytest.raises(FileNotFoundError):
        boc.load_model(str(tmp_path / "missing.pt"))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a hear_suite checkpoint"):
        boc.load_model(str(foreign))
    wrong = tmp_path / "wrong.pt"
    obj = checkpoint.load_checkpoint(model_file, "bagofcodes")
    obj["config"]["codebook_size"] = 32
    checkpoint.save_checkpoint(wrong, family="bagofcodes", config=obj["config"],
                               state_dict=obj["state_dict"])
    with pytest.raises(ValueError, match="do not fit"):
        boc.load_model(str(wrong))
    with pytest.raises(ValueError, match="unknown bagofcodes option"):
        boc.load_model(str(model_file), hop_ms=50)
    for options, word in [({"timestamp_hop_ms": 30}, "timestamp_hop_ms"),
                          ({"timestamp_hop_ms": 100}, "timestamp_hop_ms"),
                          ({"timestamp_window_ms": 250}, "timestamp_window_ms"),
                          ({"max_frames": 10}, "max_frames")]:
        with pytest.raises(ValueError, match=word):
            boc.load_model(str(model_file), **options)


def test_shipped_weights_sizes_and_normalisation():
    """The shipped model: sizes, and per-second counts for clips longer than a second (its
    golden values are checked with the other models' in test_package.py)."""
    model = boc.load_model()
    assert model.scene_embedding_size == model.timestamp_embedding_size == 1024
    t = torch.arange(2 * SR) / SR
    audio = torch.stack([0.3 * torch.sin(2 * np.pi * 440 * t), 0.5 * torch.sin(
        2 * np.pi * (2000 * t - 300 * t ** 2))])
    scene = boc.get_scene_embeddings(audio, model)
    assert torch.allclose(per_view(scene), torch.tensor(PER_SECOND, dtype=torch.float32))


# ---------------------------------------------------------------------------------------------
# trainer

FAST = ["--width", "16", "--codebook-size", "8", "--steps-per-epoch", "3", "--batch-size", "16",
        "--kmeans-vectors", "500", "--workers", "0"]


@pytest.fixture(scope="module")
def wav_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    with TaskWriter(root, task_name="toy", embedding_type="scene", prediction_type="multilabel",
                    sample_duration=None, evaluation=["mAP"]) as w:
        for i, split in enumerate(["train"] * 6 + ["valid", "test"]):
            t = np.arange(int(SR * (0.6 + 0.4 * i))) / SR
            audio = (0.3 * np.sin(2 * np.pi * (200 + 300 * i) * t)
                     + 0.05 * rng.standard_normal(len(t)))
            w.add(split, f"c{i}", audio, ["a" if i % 2 else "b"])
    return w.path


def train(audio: Path, out: Path, *extra: str) -> None:
    assert cli.main(["train", "bagofcodes", "--audio", str(audio), "--out", str(out),
                     *FAST, *extra]) == 0


def test_train_outputs_and_exact_resume(wav_dir, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(wav_dir, straight, "--epochs", "2")
    train(wav_dir, resumed, "--epochs", "1", "--warmup-epochs", "1")
    train(wav_dir, resumed, "--epochs", "2", "--warmup-epochs", "1")
    assert (straight / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (straight / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "valid_fenv" in rows[0]
    a = training.load_training_state(straight / "last.pt")["model"]
    b = training.load_training_state(resumed / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = boc.load_model(str(straight / "bagofcodes.pt"))
    assert model.config.codebook_size == 8
    scene = boc.get_scene_embeddings(noise(2, SR * 2), model)
    assert torch.allclose(per_view(scene), torch.tensor(PER_SECOND, dtype=torch.float32))
    prov = checkpoint.load_checkpoint(straight / "bagofcodes.pt", "bagofcodes")["provenance"]
    assert prov["clips"] == 8 and set(prov["kmeans"]) == set(VIEWS)


def test_torchrun_two_cpu_processes(wav_dir, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "hear_suite.cli", "train", "bagofcodes", "--audio", str(wav_dir), "--out",
           str(out), *FAST, "--epochs", "1", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prov = checkpoint.load_checkpoint(out / "bagofcodes.pt", "bagofcodes")["provenance"]
    assert prov["world_size"] == 2


# ---------------------------------------------------------------------------------------------
# the paper's classifier


def test_mask_codes_zeroes_a_share_p():
    from hear_suite.bagofcodes.head import mask_codes

    x = torch.ones(200, 256)
    masked = mask_codes(x, 0.35, torch.Generator().manual_seed(0))
    assert abs((masked == 0).float().mean().item() - 0.35) < 0.01
    assert torch.equal(mask_codes(x, 0.0), x)


def test_train_head_on_a_multilabel_task(wav_dir, model_file, tmp_path):
    import json

    out = tmp_path / "head"
    assert cli.main(["train", "bagofcodes-head", "--task-dir", str(wav_dir), "--model",
                     str(model_file), "--out", str(out), "--epochs", "3", "--hidden", "16",
                     "--mask-p", "0.2", "--workers", "0"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert {"chunk_map", "clip_map"} <= set(scores["test"]) and 1 <= scores["best_epoch"] <= 3
    head = checkpoint.load_checkpoint(out / "head.pt", "bagofcodes-head")
    assert head["config"]["multilabel"] and head["config"]["labels"] == ["a", "b"]
    assert (out / "curves.png").is_file() and (out / "features.pt").is_file()
