"""Training plumbing (hear_suite.training) and ``hear-suite train kwmlp`` end to end on a tiny
generated task: outputs, exact resume, and replicas that agree under torchrun (2 CPU processes)."""
from __future__ import annotations

import csv
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from hear_suite import checkpoint, cli, training
from hear_suite.tasks import TaskWriter

REPO = Path(__file__).resolve().parent.parent
SR = 16000
# depth 2, batch 16, 90 training clips: 6 steps an epoch
FAST = ["--depth", "2", "--batch-size", "16", "--lr", "3e-3", "--workers", "0"]


def write_toy_task(root: Path, *, per_class=(30, 8, 8), sample_rate: int = SR,
                   seed: int = 0) -> Path:
    """3 classes: a low tone, a high tone, white noise; 1 s clips."""
    rng = np.random.default_rng(seed)
    t = np.arange(sample_rate) / sample_rate
    with TaskWriter(root, task_name="toy", embedding_type="scene", prediction_type="multiclass",
                    sample_duration=1.0, evaluation=["top1_acc"], sample_rate=sample_rate) as w:
        k = 0
        for split, n in zip(("train", "valid", "test"), per_class):
            for label in ("low", "high", "noise"):
                for _ in range(n):
                    if label == "noise":
                        audio = 0.1 * rng.standard_normal(len(t))
                    else:
                        f = rng.uniform(300, 500) if label == "low" else rng.uniform(2000, 3000)
                        audio = 0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(len(t))
                    w.add(split, f"clip{k:03d}", audio, [label])
                    k += 1
    return w.path


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Path:
    return write_toy_task(tmp_path_factory.mktemp("tasks"))


def train(task: Path, out: Path, *extra: str) -> None:
    assert cli.main(["train", "kwmlp", "--task-dir", str(task), "--out", str(out),
                     *FAST, *extra]) == 0


def read_rows(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def model_state(run: Path) -> Dict[str, torch.Tensor]:
    return training.load_training_state(run / "last.pt")["model"]


# ---------------------------------------------------------------------------------------------
# plumbing


def test_shard_indices_partition_and_agree_across_ranks():
    n, world = 10, 3
    shards = [training.shard_indices(n, rank=r, world_size=world, epoch=5, seed=1)
              for r in range(world)]
    assert {len(s) for s in shards} == {math.ceil(n / world)}
    assert set(torch.cat(shards).tolist()) == set(range(n))
    again = training.shard_indices(n, rank=1, world_size=world, epoch=5, seed=1)
    assert torch.equal(again, shards[1])
    other = training.shard_indices(n, rank=1, world_size=world, epoch=6, seed=1)
    assert not torch.equal(other, shards[1])


def test_warmup_decay_schedules():
    f = [training.warmup_decay_factor(s, warmup_steps=4, total_steps=12) for s in range(12)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == 1.0 and all(a > b for a, b in zip(f[4:], f[5:])) and f[-1] > 0
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = training.WarmupDecayLR(opt, warmup_steps=4, total_steps=12)
    for _ in range(6):
        opt.step()
        sched.step()
    # a resumed run with a longer plan continues from step 6 with its own plan
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    longer = training.WarmupDecayLR(opt2, warmup_steps=4, total_steps=24)
    longer.load_state_dict(sched.state_dict())
    expect = 0.1 * training.warmup_decay_factor(6, warmup_steps=4, total_steps=24)
    assert opt2.param_groups[0]["lr"] == pytest.approx(expect)
    # seed 003: warm-up, then 1/sqrt(step), continuous at the end of the warm-up
    g = [training.warmup_decay_factor(s, warmup_steps=4, total_steps=12, decay="inverse_sqrt")
         for s in (3, 15, 63)]
    assert g == pytest.approx([1.0, 0.5, 0.25])
    with pytest.raises(ValueError, match="decay"):
        training.WarmupDecayLR(opt, warmup_steps=4, total_steps=12, decay="linear")


def test_spec_augment_masks_bands_of_bounded_width():
    x = torch.ones(64, 40, 98)
    y = training.spec_augment(x, time_masks=1, time_width=25, freq_masks=0, freq_width=7,
                              generator=torch.Generator().manual_seed(0))
    zero_frames = (y == 0).all(dim=1).sum(dim=1)  # (64,) masked frames per example
    assert zero_frames.max() <= 25 and zero_frames.float().mean() > 5
    assert ((y == 0) | (y == 1)).all()
    assert torch.equal(training.spec_augment(x, time_masks=0, time_width=25, freq_masks=0,
                                             freq_width=7), x)


def test_metrics_log_replaces_rows_instead_of_duplicating(tmp_path):
    log = training.MetricsLog(tmp_path / "m.csv")
    for e in (1, 2, 3):
        log.append({"epoch": e, "loss": 1.0 / e})
    reread = training.MetricsLog(tmp_path / "m.csv")
    reread.truncate(2)
    reread.append({"epoch": 3, "loss": 0.25})
    assert [(r["epoch"], r["loss"]) for r in read_rows(tmp_path / "m.csv")] == \
        [("1", "1"), ("2", "0.5"), ("3", "0.25")]


def test_rng_state_roundtrip_through_weights_only_file(tmp_path):
    training.seed_everything(3)
    checkpoint.save_atomic({"rng": training.rng_state()}, tmp_path / "s.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    training.seed_everything(99)
    training.set_rng_state(checkpoint.load_file(tmp_path / "s.pt")["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


# ---------------------------------------------------------------------------------------------
# hear-suite train kwmlp


def test_train_kwmlp_writes_outputs_and_a_loadable_model(task, tmp_path):
    import hear_suite.kwmlp as kwmlp

    out = tmp_path / "run"
    train(task, out, "--epochs", "3", "--warmup-epochs", "1")
    rows = read_rows(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [r["step"] for r in rows] == ["6", "12", "18"]
    assert {"lr", "train_loss", "train_acc", "valid_loss", "valid_acc"} <= set(rows[0])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("last.pt", "best.pt"):
        assert (out / name).is_file()

    model = kwmlp.load_model(str(out / "kwmlp.pt"))
    assert model.config.labels == ("high", "low", "noise") and model.config.depth == 2
    prov = checkpoint.load_checkpoint(out / "kwmlp.pt", "kwmlp")["provenance"]
    assert prov["world_size"] == 1 and prov["epochs"] == 3 and prov["seed"] == 0
    assert prov["valid_acc"] == pytest.approx(max(float(r["valid_acc"]) for r in rows), abs=1e-5)
    assert prov["valid_acc"] > 0.6, "3 easy classes: training should beat chance (1/3)"
    assert 0.0 <= prov["test_acc"] <= 1.0
    audio = torch.rand(2, SR + 3000) * 0.2 - 0.1
    scene = kwmlp.get_scene_embeddings(audio, model)
    emb, ts = kwmlp.get_timestamp_embeddings(audio, model)
    assert scene.shape == (2, 1024) and torch.isfinite(scene).all()
    assert emb.shape[:2] == ts.shape and emb.shape[2] == 64


def test_resume_continues_and_matches_a_straight_run(task, tmp_path):
    # Warm-up spans both epochs, so the 1-epoch run's schedule is the first half of the
    # 2-epoch run's (extending --epochs re-plans only the cosine part).
    sched = ["--warmup-epochs", "2", "--seed", "7"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(task, straight, "--epochs", "2", *sched)
    train(task, resumed, "--epochs", "1", *sched)
    first_row = read_rows(resumed / "metrics.csv")[0]
    train(task, resumed, "--epochs", "2", *sched)

    rows = read_rows(resumed / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0] == first_row, "epoch 1 was retrained instead of resumed"
    assert training.load_training_state(resumed / "last.pt")["step"] == 12
    a, b = model_state(straight), model_state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs from the straight run"
    ref = read_rows(straight / "metrics.csv")
    for r, s in zip(rows, ref):
        assert {k: v for k, v in r.items() if k != "time_s"} == \
            {k: v for k, v in s.items() if k != "time_s"}

    # --restart starts over: one row again
    train(task, resumed, "--epochs", "1", "--restart", *sched)
    assert [r["epoch"] for r in read_rows(resumed / "metrics.csv")] == ["1"]


def test_resume_refuses_another_model_and_missing_state(task, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="no training state"):
        train(task, out, "--epochs", "1", "--resume")
    train(task, out, "--epochs", "1")
    with pytest.raises(SystemExit, match="another model"):
        train(task, out, "--epochs", "2", "--dim", "32")


def test_task_without_16k_audio_is_refused(tmp_path):
    task = write_toy_task(tmp_path, per_class=(1, 1, 1), sample_rate=22050)
    with pytest.raises(ValueError, match="22050 Hz.*16000"):
        train(task, tmp_path / "run", "--epochs", "1")


def test_torchrun_two_cpu_processes_keep_identical_replicas(task, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "hear_suite.cli", "train", "kwmlp", "--task-dir", str(task), "--out", str(out),
           *FAST, "--epochs", "2", "--warmup-epochs", "1", "--device", "cpu",
           "--save-rank-weights"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = checkpoint.load_file(out / "rank0.pt")
    r1 = checkpoint.load_file(out / "rank1.pt")
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"rank weights differ at {k}"
    assert all(torch.equal(r0[k], v) for k, v in model_state(out).items())
    prov = checkpoint.load_checkpoint(out / "kwmlp.pt", "kwmlp")["provenance"]
    assert prov["world_size"] == 2
    # the global batch of 16 is split 8 + 8: 90 clips -> 6 steps per epoch, as with one process
    assert [r["step"] for r in read_rows(out / "metrics.csv")] == ["6", "12"]
