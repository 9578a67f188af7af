"""Streaming training data (hear_suite.data) and what the trainers build on it: crops, draw
order, balanced sampling, whole-clip evaluation, waveform mixup, mid-epoch resume, gradient
accumulation, bf16, torch.compile and --max-steps."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hear_suite import cli, data, training
from hear_suite.tasks import TaskWriter

SR = 16000
REPO = Path(__file__).resolve().parent.parent


def write_long_clip_task(root: Path, *, seed: int = 0) -> Path:
    """Multilabel scene task with clips of 0.3 to 3.5 s: a tone (low or high) that starts late in
    the clip for some, and noise; long clips span several AST windows."""
    rng = np.random.default_rng(seed)
    with TaskWriter(root, task_name="long", embedding_type="scene", prediction_type="multilabel",
                    sample_duration=None, evaluation=["mAP"]) as w:
        k = 0
        for split, n in (("train", 24), ("valid", 8), ("test", 8)):
            for _ in range(n):
                length = int(SR * rng.choice([0.3, 1.0, 2.0, 3.5]))
                t = np.arange(length) / SR
                labels = sorted(rng.choice(["low", "high", "noise"], size=rng.integers(1, 3),
                                           replace=False))
                audio = np.zeros(length)
                if "low" in labels:
                    audio += 0.3 * np.sin(2 * np.pi * 400 * t)
                if "high" in labels:
                    audio += 0.3 * np.sin(2 * np.pi * 2500 * t)
                if "noise" in labels:
                    audio += 0.1 * rng.standard_normal(length)
                w.add(split, f"clip{k:03d}", audio, list(labels))
                k += 1
    return w.path


@pytest.fixture(scope="module")
def long_task(tmp_path_factory) -> Path:
    return write_long_clip_task(tmp_path_factory.mktemp("long"))


@pytest.fixture(scope="module")
def toy_task(tmp_path_factory) -> Path:
    from test_training import write_toy_task

    return write_toy_task(tmp_path_factory.mktemp("toy"))


AST_FAST = ["--dim", "32", "--depth", "1", "--heads", "2", "--ff-dim", "32", "--peg-blocks", "1",
            "--window-frames", "96", "--batch-size", "8", "--workers", "0", "--warmup-epochs",
            "1", "--seed", "3", "--swa-epochs", "1"]
KWMLP_FAST = ["--depth", "2", "--batch-size", "16", "--lr", "3e-3", "--workers", "0"]


def train(model: str, task: Path, out: Path, *extra: str) -> None:
    fast = AST_FAST if model == "ast" else KWMLP_FAST
    assert cli.main(["train", model, "--task-dir", str(task), "--out", str(out), *fast,
                     *extra]) == 0


def rows(run: Path):
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(f)]


def last_weights(run: Path):
    return training.load_training_state(run / "last.pt")["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = last_weights(a), last_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"


# ---------------------------------------------------------------------------------------------
# hear_suite.data


def write_wav(path: Path, audio: np.ndarray) -> Path:
    sf.write(str(path), audio.astype(np.float32), SR, subtype="FLOAT")
    return path


def test_read_segment_zero_pads_outside_the_file(tmp_path):
    audio = np.arange(1, 101, dtype=np.float32) / 100
    path = write_wav(tmp_path / "a.wav", audio)
    assert np.array_equal(data.read_segment(path, 10, 5, SR), audio[10:15])
    seg = data.read_segment(path, -3, 6, SR)
    assert np.array_equal(seg, np.r_[np.zeros(3), audio[:3]].astype(np.float32))
    seg = data.read_segment(path, 98, 5, SR)
    assert np.array_equal(seg, np.r_[audio[98:], np.zeros(3)].astype(np.float32))
    assert not data.read_segment(path, 200, 4, SR).any()
    with pytest.raises(ValueError, match="16000 Hz, expected 22050"):
        data.read_segment(path, 0, 4, 22050)


def test_crops_cover_the_clip_and_start_crop_is_the_embedders_first_window(tmp_path):
    from hear_suite.ast.embedder import ASTEmbedder
    from hear_suite.ast.model import AST, ASTConfig

    crop = data.Crop(window=100, mode="random", pad_front=20)
    rng = np.random.default_rng(0)
    starts = [crop.start(1000, rng) for _ in range(2000)]
    assert min(starts) == -20 and max(starts) == 1000 - 100  # the whole padded clip
    assert data.Crop(100, "random", pad_front=20).start(50, rng) == -20  # short: from the start
    shifted = [data.Crop(100, "start", shift=30).start(1000, rng) for _ in range(500)]
    assert min(shifted) == -30 and max(shifted) == 30
    with pytest.raises(ValueError, match="crop mode"):
        data.Crop(100, "centre")

    embedder = ASTEmbedder(AST(ASTConfig.preset("small")))
    audio = np.random.default_rng(1).uniform(-0.5, 0.5, 8 * SR).astype(np.float32)
    path = write_wav(tmp_path / "clip.wav", audio)
    clips = data.CroppedClips([path], data.Crop(embedder.window_samples, "start",
                                                pad_front=embedder.pad_front), SR)
    _, first = clips[(0, 123)]
    expected = embedder.window_audio(torch.from_numpy(audio)[None], 0, 1)[0, 0]
    assert torch.equal(first, expected)
    # a random crop is a contiguous piece of the padded clip, the same for the same draw id
    rand = data.CroppedClips([path], data.Crop(embedder.window_samples, "random",
                                               pad_front=embedder.pad_front), SR)
    a, b = rand[(0, 7)][1], rand[(0, 7)][1]
    assert torch.equal(a, b)
    padded = np.r_[np.zeros(embedder.pad_front, np.float32), audio]
    at = [s for s in range(len(padded) - len(a) + 1) if padded[s] == a[0].item()]
    assert any(np.array_equal(padded[s:s + len(a)], a.numpy()) for s in at)


def test_epoch_batches_skip_and_do_not_depend_on_workers(tmp_path):
    paths = [write_wav(tmp_path / f"{i}.wav", np.full(SR // 4, i / 10)) for i in range(10)]
    clips = data.CroppedClips(paths, data.Crop(SR // 8, "random"), SR)
    order = data.epoch_order(10, epoch=2, seed=5, rank=0, world_size=1)
    full = list(data.EpochBatches(order, 3, seed=5, epoch=2, rank=0))
    assert [len(b) for b in full] == [3, 3, 3, 1]
    assert sorted(i for b in full for i, _ in b) == list(range(10))
    assert list(data.EpochBatches(order, 3, seed=5, epoch=2, rank=0, skip=2)) == full[2:]
    outs = []
    for workers in (0, 2):
        sampler = data.EpochBatches(order, 3, seed=5, epoch=2, rank=0)
        outs.append(list(data.loader(clips, sampler, workers=workers, device=torch.device("cpu"),
                                     collate_fn=data.stack_clips)))
    for (i0, x0), (i1, x1) in zip(*outs):
        assert torch.equal(i0, i1) and torch.equal(x0, x1)
    # every rank gets an equal share of one shared order
    shares = [data.epoch_order(10, epoch=0, seed=1, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shares] == [4, 4, 4]


def test_label_balanced_sampling_draws_rare_labels_as_often_as_common_ones():
    w = data.label_balanced_weights([[0]] * 9 + [[1]] + [[0, 1]] + [[]], 2)
    assert w[0] == pytest.approx(1 / 10) and w[9] == pytest.approx(1 / 2)
    assert w[10] == pytest.approx(1 / 10 + 1 / 2) and w[11] == pytest.approx(1 / 10)
    labels = [[0]] * 90 + [[1]] * 9 + [[2]] * 2  # a uniform epoch: 90 : 9 : 2
    w = data.label_balanced_weights(labels, 3)
    draws = torch.cat([data.epoch_order(101, epoch=e, seed=0, rank=0, world_size=1, weights=w)
                       for e in range(40)])
    per_label = np.bincount([labels[i][0] for i in draws.tolist()], minlength=3)
    assert per_label.max() / per_label.min() < 1.15, per_label
    assert not torch.equal(draws[:101], draws[101:202])  # a new draw every epoch


# ---------------------------------------------------------------------------------------------
# AST: streamed crops, waveform mixup, whole-clip evaluation


def test_ast_waveform_mixup_mixes_audio_and_targets(long_task):
    from hear_suite.ast import train as ast_train
    from hear_suite.ast.embedder import ASTEmbedder
    from hear_suite.ast.model import AST, ASTConfig

    task = ast_train.open_task(long_task, SR)
    split = ast_train.Split(task, "train")
    config = ASTConfig.preset("small", labels=tuple(task.labels))
    embedder = ASTEmbedder(AST(config))
    args = argparse.Namespace(crop="random", balanced=False, batch_size=4, accumulate=1,
                              seed=0, workers=0, mixup=1.0, mixup_alpha=2.0,
                              specaugment_on="log_mel", time_masks=0, time_mask_width=0,
                              freq_masks=0, freq_mask_width=0)
    info = training.DistInfo(0, 0, 1, torch.device("cpu"))
    stream = ast_train.TrainStream(split, embedder, multilabel=True, args=args, info=info)
    indices, audio = next(iter(stream.stream.epoch(0)))[0]
    torch.manual_seed(0)
    np.random.seed(0)
    x, y = stream.features(indices, audio)
    torch.manual_seed(0)
    np.random.seed(0)
    assert torch.rand(()).item() < 1.0
    lam = float(np.random.beta(2.0, 2.0))
    mixed = lam * audio + (1 - lam) * audio.flip(0)
    assert torch.allclose(x, embedder.frontend(mixed), atol=1e-5)
    plain = split.targets(indices, True)
    assert torch.allclose(y, lam * plain + (1 - lam) * plain.flip(0))


def test_ast_whole_clip_evaluation_is_the_hear_scene_embedding_through_the_head(long_task):
    from hear_suite.ast import train as ast_train
    from hear_suite.ast.embedder import ASTEmbedder
    from hear_suite.ast.model import AST, ASTConfig
    from hear_suite.tasks import load_wav

    task = ast_train.open_task(long_task, SR)
    split = ast_train.Split(task, "valid")
    torch.manual_seed(0)
    model = AST(ASTConfig.preset("small", labels=tuple(task.labels), window_frames=96))
    embedder = ASTEmbedder(model)
    info = training.DistInfo(0, 0, 1, torch.device("cpu"))
    evaluator = ast_train.Evaluator(split, embedder, multilabel=True, batch_size=3, workers=0,
                                    info=info)
    loss, score = evaluator(model)
    logits = []
    for path in split.paths:  # one clip at a time, through the HEAR plugin's embedding
        scene = embedder.scene_embeddings(torch.from_numpy(load_wav(path))[None])
        logits.append(model.head(model.head_norm(scene)).detach())
    logits = torch.cat(logits)
    y = split.targets(torch.arange(len(split)), True)
    assert loss == pytest.approx(ast_train.loss_fn(logits, y, True).item(), abs=1e-5)
    assert score == pytest.approx(ast_train.score(logits, y, True), abs=1e-6)
    assert max(embedder.num_windows(len(load_wav(p))) for p in split.paths) > 1


# ---------------------------------------------------------------------------------------------
# trainers: resume mid-epoch, accumulation, precision, compile, max-steps, bad flags


@pytest.mark.parametrize("model", ["kwmlp", "ast"])
def test_resume_mid_epoch_equals_an_uninterrupted_run(model, toy_task, long_task, tmp_path):
    task = toy_task if model == "kwmlp" else long_task
    extra = ["--epochs", "2", "--warmup-epochs", "1"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(model, task, straight, *extra)
    train(model, task, resumed, *extra, "--max-steps", "2")  # 2 of the first epoch's 3 or 6 steps
    state = training.load_training_state(resumed / "last.pt")
    assert state["step"] == 2 and state["epoch"] == 0 and state["extra"]["in_epoch"]["steps"] == 2
    assert not (resumed / "metrics.csv").exists()  # no epoch finished
    # the rest with reader processes: crops are keyed by draw, not by worker
    train(model, task, resumed, *extra, "--workers", "2")
    assert_same_weights(straight, resumed)
    assert rows(straight) == rows(resumed)


def test_checkpoint_every_writes_mid_epoch_state(toy_task, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train("kwmlp", toy_task, out, "--epochs", "1", "--checkpoint-every", "4", "--max-steps", "5")
    state = training.load_training_state(out / "last.pt")
    assert state["step"] == 5 and state["extra"]["in_epoch"]["steps"] == 5  # max-steps saved it
    # every write of last.pt: mid-epoch every 4 steps, and at each epoch's end (6 steps each)
    saved = []
    write = training.save_training_state
    monkeypatch.setattr(training.state, "save_training_state", lambda path, **kw: (
        saved.append((kw["epoch"], kw["step"], kw["extra"]["in_epoch"]["steps"])),
        write(path, **kw)))
    train("kwmlp", toy_task, tmp_path / "every", "--epochs", "2", "--checkpoint-every", "4")
    assert saved == [(0, 4, 4), (1, 6, 0), (1, 8, 2), (2, 12, 0)]


def test_max_steps_writes_loadable_weights(long_task, tmp_path):
    from hear_suite import ast
    from hear_suite.checkpoint import load_checkpoint

    out = tmp_path / "run"
    train("ast", long_task, out, "--epochs", "3", "--max-steps", "2")
    model = ast.load_model(str(out / "ast_conditional.pt"))
    prov = load_checkpoint(out / "ast_conditional.pt", "ast")["provenance"]
    assert prov["steps"] == 2 and "--max-steps" in prov["weights"]
    assert 0.0 <= prov["valid_mAP"] <= 1.0
    state = last_weights(out)
    assert torch.equal(model.encoder.state_dict()["head.weight"], state["head.weight"])
    assert ast.get_scene_embeddings(torch.zeros(2, SR), model).shape == (2, 32)
    # --evaluate scores a weights file the way training did
    train("ast", long_task, tmp_path / "scores", "--evaluate", str(out / "ast_conditional.pt"))
    scores = json.loads((tmp_path / "scores" / "scores.json").read_text())
    assert scores["valid_mAP"] == pytest.approx(prov["valid_mAP"], abs=1e-6)
    assert scores["test_mAP"] == pytest.approx(prov["test_mAP"], abs=1e-6)
    with pytest.raises(SystemExit, match="not the 3 labels"):
        train("ast", long_task, tmp_path / "bad", "--evaluate", str(REPO / "weights" / "ast_real.pt"))


def test_gradient_accumulation_matches_one_big_batch(toy_task, tmp_path):
    # no randomness in the forward pass (no block dropping, no masks): 2 micro-batches of 8 give
    # the gradient of the batch of 16
    det = ["--epochs", "1", "--survival-prob", "1", "--time-masks", "0", "--freq-masks", "0"]
    one, two = tmp_path / "one", tmp_path / "two"
    train("kwmlp", toy_task, one, *det)
    train("kwmlp", toy_task, two, *det, "--accumulate", "2")
    a, b = last_weights(one), last_weights(two)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5), k
    assert rows(one)[0]["step"] == rows(two)[0]["step"] == "6"


def test_bf16_training_keeps_float32_weights(long_task, tmp_path):
    out = tmp_path / "bf16"
    train("ast", long_task, out, "--epochs", "1", "--precision", "bf16")
    row = rows(out)[0]
    assert np.isfinite(float(row["train_loss"])) and np.isfinite(float(row["valid_loss"]))
    weights = last_weights(out)
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    from hear_suite.checkpoint import load_checkpoint

    assert load_checkpoint(out / "ast_conditional.pt", "ast")["provenance"]["precision"] == "bf16"


def test_compiled_training_runs(toy_task, tmp_path):
    out = tmp_path / "compiled"
    train("kwmlp", toy_task, out, "--epochs", "1", "--max-steps", "2", "--compile")
    assert training.load_training_state(out / "last.pt")["step"] == 2
    assert all(not k.startswith("_orig_mod") for k in last_weights(out))


def test_balanced_sampling_trains(long_task, tmp_path):
    train("ast", long_task, tmp_path / "run", "--epochs", "1", "--balanced")
    assert rows(tmp_path / "run")[0]["step"] == "3"


@pytest.mark.parametrize("model, flags, message", [
    ("kwmlp", ["--accumulate", "3"], "multiple of the number of processes x --accumulate"),
    ("kwmlp", ["--max-steps", "0"], "--max-steps must be >= 1"),
    ("kwmlp", ["--workers", "-1"], "--workers must be >= 0"),
    ("kwmlp", ["--time-shift", "-5"], "--time-shift must be >= 0"),
    ("ast", ["--checkpoint-every", "-1"], "--checkpoint-every must be >= 0"),
    ("ast", ["--norm-clips", "0"], "--norm-clips must be >= 1"),
])
def test_bad_flags_are_named(model, flags, message, toy_task, long_task, tmp_path):
    task = toy_task if model == "kwmlp" else long_task
    with pytest.raises(SystemExit, match=message.replace("+", r"\+")):
        train(model, task, tmp_path / "run", "--epochs", "1", *flags)


def test_tasks_of_the_wrong_type_are_refused(toy_task, long_task, tmp_path):
    with pytest.raises(ValueError, match="multiclass scene tasks, this one is multilabel"):
        train("kwmlp", long_task, tmp_path / "a", "--epochs", "1")
    events = tmp_path / "events"
    with TaskWriter(events, task_name="ev", embedding_type="event", prediction_type="multilabel",
                    sample_duration=1.0, evaluation=["event_onset_200ms_fms"]) as w:
        for split in ("train", "valid", "test"):
            w.add(split, f"{split}0", np.zeros(SR), [{"label": "x", "start": 0.0, "end": 100.0}])
    with pytest.raises(ValueError, match="event task"):
        train("ast", events / "ev-v1-full", tmp_path / "b", "--epochs", "1")
