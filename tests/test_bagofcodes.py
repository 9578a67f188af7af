"""hear_suite.bagofcodes: histogram invariants, cumulative-sum windows against direct counting,
determinism, edges and short clips, checkpoints and options, bad input, the shipped weights, and
the trainer (outputs; exact resume at epoch ends and mid-epoch; the log-mel cache: contents,
reuse, rebuild; step batches as pure functions of their key; the streamed k-means sample;
--accumulate, bf16; bad flags; two torchrun processes)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import hear_suite.bagofcodes as boc
from hear_suite import checkpoint, cli, data, training
from hear_suite.bagofcodes.embedder import BagOfCodesEmbedder, windowed_counts
from hear_suite.bagofcodes import cache as boc_cache
from hear_suite.bagofcodes import codebooks
from hear_suite.bagofcodes import train as T
from hear_suite.bagofcodes.io import load_bagofcodes, save_bagofcodes
from hear_suite.bagofcodes.model import (VIEWS, BagOfCodes, BagOfCodesConfig, build_frontend,
                                         view_vectors)
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


def write_toy_task(root: Path, pitch_shift: int = 0) -> Path:
    """Eight clips of 0.6 to 3.4 s (tones and noise; the first shorter than the 1 s unit)."""
    rng = np.random.default_rng(0)
    with TaskWriter(root, task_name="toy", embedding_type="scene", prediction_type="multilabel",
                    sample_duration=None, evaluation=["mAP"]) as w:
        for i, split in enumerate(["train"] * 6 + ["valid", "test"]):
            t = np.arange(int(SR * (0.6 + 0.4 * i))) / SR
            audio = (0.3 * np.sin(2 * np.pi * (200 + 300 * i + pitch_shift) * t)
                     + 0.05 * rng.standard_normal(len(t)))
            w.add(split, f"c{i}", audio, ["a" if i % 2 else "b"])
    return w.path


@pytest.fixture(scope="module")
def wav_dir(tmp_path_factory) -> Path:
    return write_toy_task(tmp_path_factory.mktemp("wavs"))


def train(audio: Path, out: Path, *extra: str) -> None:
    assert cli.main(["train", "bagofcodes", "--audio", str(audio), "--out", str(out),
                     *FAST, *extra]) == 0


@pytest.fixture(scope="module")
def straight(wav_dir, tmp_path_factory) -> Path:
    """An uninterrupted two-epoch run."""
    out = tmp_path_factory.mktemp("straight")
    train(wav_dir, out, "--epochs", "2")
    return out


def last_weights(run: Path):
    return training.load_training_state(run / "last.pt")["model"]


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights in last.pt and equal metrics rows (but the wall times)."""
    wa, wb = last_weights(a), last_weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = [[{k: v for k, v in r.items() if k != "time_s"}
             for r in training.MetricsLog(run / "metrics.csv").rows] for run in (a, b)]
    assert rows[0] == rows[1] and len(rows[0]) == 2


def test_train_outputs_and_exact_resume(wav_dir, straight, tmp_path):
    resumed = tmp_path / "resumed"
    train(wav_dir, resumed, "--epochs", "1", "--warmup-epochs", "1")
    train(wav_dir, resumed, "--epochs", "2", "--warmup-epochs", "1")
    assert (straight / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (straight / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "valid_fenv" in rows[0]
    assert_same_run(straight, resumed)
    model = boc.load_model(str(straight / "bagofcodes.pt"))
    assert model.config.codebook_size == 8
    scene = boc.get_scene_embeddings(noise(2, SR * 2), model)
    assert torch.allclose(per_view(scene), torch.tensor(PER_SECOND, dtype=torch.float32))
    prov = checkpoint.load_checkpoint(straight / "bagofcodes.pt", "bagofcodes")["provenance"]
    assert prov["clips"] == 8 and set(prov["kmeans"]) == set(VIEWS)
    assert prov["epochs"] == 2 and prov["steps"] == 6


def test_mid_epoch_resume_equals_an_uninterrupted_run(wav_dir, straight, tmp_path):
    """Stopped by --max-steps inside epoch 1 and again inside epoch 2 (drawn by 2 workers the
    second time, with a mid-epoch last.pt every 2 steps), then finished: the same weights and
    metrics as the run that never stopped; each stop leaves loadable weights."""
    run = tmp_path / "interrupted"
    train(wav_dir, run, "--epochs", "2", "--max-steps", "2")
    state = training.load_training_state(run / "last.pt")
    assert (state["epoch"], state["step"], state["extra"]["in_epoch"]["steps"]) == (0, 2, 2)
    assert not (run / "metrics.csv").exists()  # no epoch ended
    prov = checkpoint.load_checkpoint(run / "bagofcodes.pt", "bagofcodes")["provenance"]
    assert (prov["steps"], prov["epochs"]) == (2, 0)
    assert boc.get_scene_embeddings(noise(1, SR), boc.load_model(str(run / "bagofcodes.pt"))
                                    ).shape == (1, 4 * 8)
    train(wav_dir, run, "--epochs", "2", "--max-steps", "4", "--workers", "2",
          "--checkpoint-every", "2")
    assert training.load_training_state(run / "last.pt")["step"] == 4
    train(wav_dir, run, "--epochs", "2")
    assert_same_run(straight, run)


def test_log_mel_cache_reused_on_resume_and_rebuilt_when_the_audio_changes(tmp_path):
    audio = write_toy_task(tmp_path / "audio")
    run = tmp_path / "run"
    data_file, index_file = run / boc_cache.DATA, run / boc_cache.INDEX

    def stamp():
        return [(p.stat().st_ino, p.stat().st_mtime_ns) for p in (data_file, index_file)]

    train(audio, run, "--epochs", "1")
    first = stamp()
    train(audio, run, "--epochs", "2")  # resumes: same files, same frontend
    assert stamp() == first
    write_toy_task(tmp_path / "audio", pitch_shift=50)  # same names, other sounds
    with pytest.raises(SystemExit, match="another model or data; use --restart"):
        train(audio, run, "--epochs", "2")
    rebuilt = stamp()
    assert rebuilt[0] != first[0] and rebuilt[1] != first[1]
    train(audio, run, "--epochs", "1", "--restart")
    assert stamp() == rebuilt


def test_log_mel_cache_holds_the_frontend_output(wav_dir, tmp_path):
    """Every clip's frames as the frontend computes them (to float16 precision), by blocks or
    whole; windows are slices of them; statistics are those of the stored values."""
    config = BagOfCodesConfig(width=16)
    files = T.audio_files([wav_dir])
    frontend = build_frontend(config)
    mels, built = boc_cache.open_or_build(tmp_path, files, config, frontend,
                                          device=torch.device("cpu"), workers=0, is_main=True)
    assert built and len(mels) == len(files) == 8
    stored = []
    for i, path in enumerate(files):
        audio = torch.from_numpy(data.read_resampled(path, SR))
        want = boc_cache.clip_log_mel(audio, frontend, config, torch.device("cpu"))
        blocks = boc_cache.clip_log_mel(audio, frontend, config, torch.device("cpu"),
                                        block_frames=7)
        assert torch.allclose(blocks, want, atol=1e-4)
        assert want.shape[1] == mels.frames[i] == max(100, (len(audio) - 480) // 160 + 1)
        got = mels.clip(i)
        assert np.allclose(got.T, want.numpy(), atol=0.01, rtol=0)
        assert np.array_equal(mels.windows(np.array([i, i]), np.array([3, 50]), 10),
                              np.stack([got[3:13], got[50:60]]))
        stored.append(got.astype(np.float64))
    values = np.concatenate(stored)
    train_ids = np.arange(1, 8)
    mean, std = mels.statistics(train_ids)
    assert np.isclose(mean, np.concatenate(stored[1:]).mean(), rtol=1e-12)
    assert np.isclose(std, np.concatenate(stored[1:]).std(ddof=1), rtol=1e-9)
    assert np.isclose(mels.statistics(np.arange(8))[0], values.mean(), rtol=1e-12)
    with pytest.raises(IndexError, match="outside clip"):
        mels.read(3, int(mels.frames[3]) - 5, 10)
    again, built = boc_cache.open_or_build(tmp_path, files, config, frontend,
                                           device=torch.device("cpu"), workers=0, is_main=True)
    assert not built and np.array_equal(again.offsets, mels.offsets)


def test_step_batches_are_pure_functions_of_their_key(wav_dir, tmp_path):
    config = BagOfCodesConfig(width=16)
    mels, _ = boc_cache.open_or_build(tmp_path, T.audio_files([wav_dir]), config,
                                      build_frontend(config), device=torch.device("cpu"),
                                      workers=0, is_main=True)
    clips = np.arange(1, 8)

    def batches(accumulate: int, rank: int = 0):
        return T.StepBatches(mels, clips, config, mean=-5.0, std=3.0, micro=12 // accumulate,
                             accumulate=accumulate, seed=0, rank=rank)

    one, two = batches(1)[(0, 5)], batches(2)[(0, 5)]
    assert len(one) == 1 and len(two) == 2
    for v in VIEWS:
        assert one[0][v].shape == (12, config.input_dims[v]) and one[0][v].dtype == torch.float32
        assert torch.equal(batches(1)[(0, 5)][0][v], one[0][v])      # drawn again: the same
        assert torch.equal(torch.cat([two[0][v], two[1][v]]), one[0][v])  # --accumulate splits
        for other in (batches(1)[(0, 6)], batches(1)[(1, 5)], batches(1, rank=1)[(0, 5)]):
            assert not torch.equal(other[0][v], one[0][v])


def test_bottom_k_is_a_sample_of_the_smallest_keys_however_chunked():
    """The 50 rows of the smallest keys, whichever the chunks; rows whose key is already too
    large are not asked for."""
    rows = np.arange(1000, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    keys = np.random.default_rng(7).random(1000)
    samples = []
    for cuts in ([], [1, 2, 500], list(range(37, 1000, 37))):
        s, added = codebooks.BottomK(50, np.random.default_rng(7)), 0
        for part in np.split(rows, cuts):
            picked = s.candidates(len(part))
            s.add(part[picked])
            added += len(picked)
        samples.append(s.sample())
    assert all(np.array_equal(samples[0], s) for s in samples[1:])
    assert added < 400  # in small chunks, most rows are never computed (about 50 (1 + ln 20))
    assert np.array_equal(samples[0][:, 0], np.argsort(keys)[:50])
    few = codebooks.BottomK(50, np.random.default_rng(0))
    few.add(rows[:20][few.candidates(20)])
    assert sorted(few.sample()[:, 0].tolist()) == list(range(20))


def test_bottleneck_vectors_in_chunks_equal_all_at_once(random_model):
    """k-means' vectors are encoded a run of positions at a time: the same as all at once."""
    config = random_model.config
    g = torch.Generator().manual_seed(1)
    specs = [torch.randn(96, 437, generator=g), torch.randn(96, 100, generator=g)]
    for v in VIEWS:
        z = codebooks.bottleneck_vectors(random_model.encoders, specs, config, v, batch=37)
        with torch.no_grad():
            want = torch.cat([random_model.encoders[v](view_vectors(
                s[None], config, v, 10).reshape(-1, config.input_dims[v])) for s in specs])
        # equal up to the matmul's blocking, which may differ with the number of rows
        assert z.dtype == np.float64 and np.allclose(z, want.double().numpy(), atol=1e-6, rtol=0)


def test_accumulate_splits_each_step_into_micro_batches(wav_dir, tmp_path):
    """Without dropout, two micro-batches of 8 give the step of one batch of 16 (the same
    vectors), up to float rounding."""
    runs = {}
    for k in ("1", "2"):
        runs[k] = tmp_path / f"accumulate{k}"
        train(wav_dir, runs[k], "--epochs", "1", "--dropout", "0", "--accumulate", k)
    a, b = last_weights(runs["1"]), last_weights(runs["2"])
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert len(training.MetricsLog(runs["2"] / "metrics.csv").rows) == 1


def test_bf16_precision_trains_float32_weights(wav_dir, tmp_path):
    out = tmp_path / "bf16"
    train(wav_dir, out, "--epochs", "1", "--precision", "bf16")
    row = training.MetricsLog(out / "metrics.csv").rows[0]
    assert all(np.isfinite(row[f"{s}_{v}"]) for s in ("train", "valid") for v in VIEWS)
    assert all(t.dtype == torch.float32 for t in last_weights(out).values())
    prov = checkpoint.load_checkpoint(out / "bagofcodes.pt", "bagofcodes")["provenance"]
    assert prov["precision"] == "bf16"
    scene = boc.get_scene_embeddings(noise(1, SR), boc.load_model(str(out / "bagofcodes.pt")))
    assert scene.dtype == torch.float32 and torch.isfinite(scene).all()


@pytest.mark.parametrize("flags,message", [
    (["--accumulate", "3"], "--batch-size 16 must be a positive multiple of the number of "
                            "processes x --accumulate"),
    (["--max-steps", "0"], "--max-steps must be >= 1"),
    (["--checkpoint-every", "-1"], "--checkpoint-every must be >= 0"),
    (["--workers", "-1"], "--workers must be >= 0"),
    (["--valid-fraction", "1"], "--valid-fraction must be in"),
    (["--kmeans-vectors", "4"], "--kmeans-vectors must be >= --codebook-size"),
    (["--width", "0"], "width must be positive"),
    (["--steps-per-epoch", "0"], "--steps-per-epoch >= 1"),
])
def test_bad_flags_are_refused_before_any_work(wav_dir, tmp_path, flags, message):
    with pytest.raises(SystemExit, match=message):
        train(wav_dir, tmp_path / "bad", *flags)
    assert not (tmp_path / "bad").exists()


def test_bad_inputs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train(tmp_path, tmp_path / "out", "--precision", "fp16")
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .wav files"):
        train(tmp_path / "empty", tmp_path / "out")


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
    assert len(training.load_training_state(out / "last.pt")["rng"]) == 2


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
