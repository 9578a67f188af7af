"""hear_suite.ast: every positional encoding (shapes, bias formulas, PEG, resizing), the HEAR
contract at lengths from 0.1 s to 20 minutes, ImageNet initialisation, checkpoints and bad input."""
from __future__ import annotations

import csv
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hear_suite.ast as ast
from hear_suite.ast import pos_embed as pe
from hear_suite.ast.embedder import ASTEmbedder
from hear_suite.ast.imagenet import from_timm
from hear_suite.ast.io import save_encoder
from hear_suite.ast.model import AST, POS_EMBEDS, ASTConfig
from hear_suite.checkpoint import save_checkpoint
from hear_suite.registry import MODELS

SR = 16000
# 2 bands of 8 mel bins, 32-frame columns, 4 columns a window: tiny and fast
TINY = dict(n_mels=16, window_frames=128, dim=32, depth=2, heads=4, ff_dim=48, peg_blocks=2,
            dropout=0.0, labels=("a", "b", "c"))


def tiny(pos_embed: str, **kw) -> AST:
    torch.manual_seed(0)
    model = AST(ASTConfig(**{**TINY, "pos_embed": pos_embed, **kw}))
    with torch.no_grad():  # make zero-initialised parts (PEG cls vector, biases) matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def noise(n, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, length, generator=g) * 2 - 1


# ---------------------------------------------------------------------------------------------
# the encoder, per variant


@pytest.mark.parametrize("order", ["time_major", "freq_major"])
@pytest.mark.parametrize("pos_embed", POS_EMBEDS)
def test_shapes_any_grid(pos_embed, order):
    model = tiny(pos_embed, order=order)
    for frames in (32, 64, 128, 200, 480):  # 1 to 14 columns; the table is for 4
        tokens = model.forward_features(torch.randn(2, 16, frames))
        cols = (frames - 32) // 32 + 1
        assert tokens.shape == (2, 1 + 2 * cols, 32)
        assert torch.isfinite(tokens).all()
    assert model(torch.randn(3, 16, 128)).shape == (3, 3)


@pytest.mark.parametrize("pos_embed", POS_EMBEDS)
def test_variant_parameters(pos_embed):
    model = tiny(pos_embed)
    names = set(model.state_dict())
    assert ("pos_embed.weight" in names) == (pos_embed in ("absolute", "conditional_absolute",
                                                           "alibi_time"))
    assert any(".relative." in n for n in names) == (pos_embed == "relative_2d")
    assert any(n.startswith("pegs.") for n in names) == pos_embed.startswith("conditional")
    if pos_embed == "alibi_time":
        assert model.pos_embed.weight.shape == (1, 1 + 2, 32)  # CLS row + one per band


@pytest.mark.parametrize("order", ["time_major", "freq_major"])
def test_alibi_against_formula(order):
    grid, heads, p = (3, 4), 4, 1
    band, col = pe.patch_positions(grid, order)
    for mode in ("2d", "time"):
        bias = pe.alibi_bias(grid=grid, order=order, n_heads=heads, num_prefix=p, mode=mode)
        n = p + 12
        assert bias.shape == (heads, n, n)
        for h, i, j in itertools.product(range(heads), range(n), range(n)):
            if mode == "time":
                m = 2.0 ** -(1 + 7 * h / (heads - 1))
                dist = abs(int(col[j - p]) - int(col[i - p])) if min(i, j) >= p else 0
            else:
                m = 2.0 ** -(1 + 7 * (h % 2) / 1)
                axis = col if h < 2 else band
                dist = abs(int(axis[j - p]) - int(axis[i - p])) if min(i, j) >= p else 0
                if h < 2 and i >= p and j < p:
                    assert bias[h, i, j] == float("-inf")
                    continue
            assert bias[h, i, j].item() == pytest.approx(-m * dist)
    assert torch.allclose(pe.alibi_slopes(12), 2.0 ** -torch.linspace(1, 8, 12))
    assert torch.allclose(pe.press_alibi_slopes(8), 2.0 ** -torch.arange(1., 9.))


@pytest.mark.parametrize("order", ["time_major", "freq_major"])
@pytest.mark.parametrize("grid", [(2, 3), (3, 5)])
def test_relative_bias_against_formula(order, grid):
    torch.manual_seed(1)
    rel = pe.RelativePosition2D(head_dim=4, max_grid=(2, 4))  # smaller than (3, 5): clamped
    p, n = 2, 2 + grid[0] * grid[1]
    q = torch.randn(2, 3, n, 4)
    bias = rel(q, grid=grid, order=order, num_prefix=p)
    band, col = pe.patch_positions(grid, order)
    ct, cf = rel.max_grid[1] - 1, rel.max_grid[0] - 1
    want = torch.empty_like(bias)
    for i, j in itertools.product(range(n), range(n)):
        dt = df = 0
        if i >= p and j >= p:
            dt = max(-ct, min(ct, int(col[j - p] - col[i - p])))
            df = max(-cf, min(cf, int(band[j - p] - band[i - p])))
        want[:, :, i, j] = q[:, :, i] @ rel.time[dt + ct] + q[:, :, i] @ rel.freq[df + cf]
    assert torch.allclose(bias, want, atol=1e-6)


def test_relative_memory_does_not_scale_index_with_batch():
    """No (B, H, N, N) integer tensor: the index stays (N, T + 1) whatever the batch."""
    rel = pe.RelativePosition2D(head_dim=8, max_grid=(8, 31))
    q = torch.randn(4, 2, 249, 8)
    seen = []
    real_gather = torch.Tensor.gather

    def spy(self, dim, index, *a, **k):
        seen.append(index)
        return real_gather(self, dim, index, *a, **k)

    torch.Tensor.gather = spy
    try:
        rel(q, grid=(8, 31), order="time_major", num_prefix=1)
    finally:
        torch.Tensor.gather = real_gather
    for index in seen:
        assert index.stride()[0] == index.stride()[1] == 0  # expanded view over (B, H)
        assert index.shape[-1] in (32, 9)


def test_peg_leaves_prefix_unchanged():
    torch.manual_seed(0)
    x = torch.randn(2, 2 + 12, 16)
    for order in ("time_major", "freq_major"):
        later = pe.PEG(dim=16, num_prefix=2, cls_vector=False)
        out = later(x, (3, 4), order)
        assert torch.equal(out[:, :2], x[:, :2])
        assert not torch.allclose(out[:, 2:], x[:, 2:])
        first = pe.PEG(dim=16, num_prefix=2, cls_vector=True)
        with torch.no_grad():
            first.cls_vector.normal_()
        y = x.clone()
        y[:, 2:] = torch.randn(2, 12, 16)  # other patches: the prefix output does not move
        for inp in (x, y):
            assert torch.equal(first(inp, (3, 4), order)[:, :2], x[:, :2] + first.cls_vector)
    # the convolution really runs on the grid: a patch only feeds its 3 x 3 neighbourhood
    peg = pe.PEG(dim=1, num_prefix=1, cls_vector=False)
    with torch.no_grad():
        peg.proj.weight.fill_(1.0)
        peg.proj.bias.zero_()
    x = torch.zeros(1, 1 + 12, 1)
    grid_x = torch.zeros(1, 1, 3, 4)
    grid_x[0, 0, 1, 1] = 1.0
    x[:, 1:] = pe.grid_to_tokens(grid_x, "time_major")
    out = pe.tokens_to_grid(peg(x, (3, 4), "time_major")[:, 1:], (3, 4), "time_major")
    want = torch.zeros(3, 4)
    want[0:3, 0:3] = 1.0
    want[1, 1] = 2.0
    assert torch.equal(out[0, 0], want)


def test_absolute_resizing():
    torch.manual_seed(0)
    for order in ("time_major", "freq_major"):
        table = pe.AbsolutePosEmbed(dim=4, grid=(3, 6), num_prefix=2, order=order)
        assert table.table((3, 6)) is table.weight
        full = pe.tokens_to_grid(table.weight[:, 2:], (3, 6), order)
        small = pe.tokens_to_grid(table.table((2, 4))[:, 2:], (2, 4), order)
        assert torch.equal(small, full[:, :, 0:2, 1:5])  # centre crop (start = old/2 - new/2)
        big = table.table((3, 11))
        assert big.shape == (1, 2 + 33, 4)
        assert torch.equal(big[:, :2], table.weight[:, :2])
        g = pe.tokens_to_grid(big[:, 2:], (3, 11), order)
        want = torch.nn.functional.interpolate(full, size=(3, 11), mode="bilinear",
                                               align_corners=False)
        assert torch.allclose(g, want)


def test_paper_size_forward():
    torch.manual_seed(0)
    # seed 003's model on its full 992-frame input; AST (seed 002) on 2.6 s to keep the test short
    for name, frames, n_tokens in (("ast_pe", 992, 1 + 248), ("ast", 256, 2 + 12 * 25)):
        config = ASTConfig.preset(name, labels=tuple("abcde"))
        assert (config.dim, config.depth, config.heads) == (768, 12, 12)
        model = AST(config).eval()
        with torch.no_grad():
            tokens = model.forward_features(torch.randn(1, config.n_mels, frames))
            assert tokens.shape == (1, n_tokens, 768)
            assert model.forward_head(tokens).shape == (1, 5)
    assert ASTConfig.preset("ast_no_overlap").grid() == (8, 64)
    assert ASTConfig.preset("ast").grid() == (12, 101)


# ---------------------------------------------------------------------------------------------
# ImageNet initialisation


def synthetic_deit(dim=32, depth=2, grid=24, distilled=True):
    g = torch.Generator().manual_seed(0)
    sd = {"cls_token": torch.randn(1, 1, dim, generator=g),
          "pos_embed": torch.randn(1, (2 if distilled else 1) + grid * grid, dim, generator=g),
          "patch_embed.proj.weight": torch.randn(dim, 3, 16, 16, generator=g),
          "patch_embed.proj.bias": torch.randn(dim, generator=g),
          "norm.weight": torch.randn(dim, generator=g), "norm.bias": torch.randn(dim, generator=g),
          "head.weight": torch.randn(1000, dim, generator=g), "head.bias": torch.zeros(1000)}
    if distilled:
        sd["dist_token"] = torch.randn(1, 1, dim, generator=g)
        sd["head_dist.weight"] = torch.randn(1000, dim, generator=g)
    shapes = {"norm1.weight": (dim,), "norm1.bias": (dim,), "attn.qkv.weight": (3 * dim, dim),
              "attn.qkv.bias": (3 * dim,), "attn.proj.weight": (dim, dim), "attn.proj.bias": (dim,),
              "norm2.weight": (dim,), "norm2.bias": (dim,), "mlp.fc1.weight": (4 * dim, dim),
              "mlp.fc1.bias": (4 * dim,), "mlp.fc2.weight": (dim, 4 * dim), "mlp.fc2.bias": (dim,)}
    for i in range(depth):
        for k, s in shapes.items():
            sd[f"blocks.{i}.{k}"] = torch.randn(*s, generator=g)
    return sd


@pytest.mark.parametrize("distilled", [True, False])
@pytest.mark.parametrize("frames,pos_embed", [(1024, "absolute"), (400, "conditional_absolute"),
                                              (200, "conditional")])
def test_imagenet_init(distilled, frames, pos_embed):
    sd = synthetic_deit(distilled=distilled)
    config = ASTConfig.preset("ast", dim=32, depth=2, heads=4, ff_dim=128, window_frames=frames,
                              pos_embed=pos_embed, peg_blocks=1, labels=("x", "y"))
    model = AST(config)
    converted = from_timm(sd, model)
    model.load_state_dict(converted, strict=True)
    assert torch.equal(model.patch_embed.proj.weight, sd["patch_embed.proj.weight"].sum(1, True))
    mean = from_timm(sd, model, kernel_reduce="mean")["patch_embed.proj.weight"]
    assert torch.allclose(mean * 3, model.patch_embed.proj.weight, atol=1e-5)
    assert torch.equal(model.dist_token, sd["dist_token" if distilled else "cls_token"])
    if model.pos_embed is not None:
        f, t = config.grid()  # 12 bands; time 101 (interpolated) or 39 / 19 (cropped)
        table = model.pos_embed.weight
        rows = sd["pos_embed"][:, 2 if distilled else 1:]
        grid24 = rows.reshape(1, 24, 24, 32).permute(0, 3, 1, 2)
        got = pe.tokens_to_grid(table[:, 2:], (f, t), "freq_major")
        assert torch.equal(got[:, :, :, :], pe.resize_pos_grid(grid24, (f, t)))
        if t <= 24:  # centre crop on both axes, as the AST code
            assert torch.equal(got[0, :, 0, 0], grid24[0, :, 6, 12 - t // 2])
    assert model(torch.randn(1, 128, frames)).shape == (1, 2)
    with pytest.raises(ValueError, match="patch kernel"):
        from_timm(sd, AST(config.replace(patch_time=32, stride_time=32, window_frames=1024)))
    with pytest.raises(ValueError, match="qkv_bias"):
        from_timm(sd, AST(ASTConfig(**TINY)))


# ---------------------------------------------------------------------------------------------
# HEAR


@pytest.fixture(scope="module")
def embedder():
    return ASTEmbedder(tiny("conditional_absolute"), max_windows=3)


# 0.1 s, one column, a window (4 columns = 1.28 s) +- one sample, several windows
LENGTHS = [1600, 5119, 5120, 20479, 20480, 20481, 67000]


@pytest.mark.parametrize("length", LENGTHS)
def test_hear_shapes_and_timestamps(embedder, length):
    audio = noise(2, length, seed=length)
    emb, ts = ast.get_timestamp_embeddings(audio, embedder)
    scene = ast.get_scene_embeddings(audio, embedder)
    n_ts = length // 5120 + 1
    assert emb.shape == (2, n_ts, 32) and ts.shape == (2, n_ts) and scene.shape == (2, 32)
    assert torch.equal(ts[0], 320.0 * torch.arange(n_ts, dtype=torch.float32))
    assert ts[0, -1] <= 1000 * length / SR
    assert emb.dtype == ts.dtype == scene.dtype == torch.float32
    assert torch.isfinite(emb).all() and torch.isfinite(scene).all()


def test_batch_items_windows_and_repeats(embedder):
    audio = noise(4, 47000)
    small = ASTEmbedder(embedder.encoder, max_windows=1)
    emb, _ = ast.get_timestamp_embeddings(audio, embedder)
    scene = ast.get_scene_embeddings(audio, embedder)
    for i in range(4):
        one, _ = ast.get_timestamp_embeddings(audio[i:i + 1], small)
        assert torch.allclose(one[0], emb[i], atol=1e-5)
        assert torch.allclose(ast.get_scene_embeddings(audio[i:i + 1], small)[0], scene[i],
                              atol=1e-5)
    assert torch.equal(ast.get_scene_embeddings(audio, embedder), scene)
    # windows are independent: the second window (columns 4-7) only sees audio from
    # 4 * 5120 - pad_front on, so changing what comes before leaves it alone
    changed = audio.clone()
    changed[:, :4 * 5120 - embedder.pad_front] = noise(4, 4 * 5120 - embedder.pad_front, seed=9)
    other, _ = ast.get_timestamp_embeddings(changed, embedder)
    assert torch.allclose(other[:, 4:], emb[:, 4:], atol=1e-5)
    assert not torch.allclose(other[:, :4], emb[:, :4], atol=1e-3)
    patch_mean = ASTEmbedder(embedder.encoder, scene_embedding="patch_mean")
    assert torch.allclose(ast.get_scene_embeddings(audio, patch_mean), emb.mean(1), atol=1e-5)


def test_twenty_minutes_bounded():
    model = ASTEmbedder(tiny("conditional", depth=1, peg_blocks=1), max_windows=64)
    length = 20 * 60 * SR
    audio = noise(1, length)
    emb, ts = ast.get_timestamp_embeddings(audio, model)
    assert emb.shape == (1, length // 5120 + 1, 32) and ts[0, -1] == 1_200_000.0
    assert torch.isfinite(emb).all()


def test_checkpoint_round_trip_and_bad_input(tmp_path, embedder):
    path = tmp_path / "ast.pt"
    save_encoder(path, embedder.encoder, provenance={"test": True})
    model = ast.load_model(str(path), max_windows=3)
    audio = noise(2, 30000)
    assert torch.equal(ast.get_scene_embeddings(audio, model),
                       ast.get_scene_embeddings(audio, embedder))
    assert model.encoder.config == embedder.encoder.config
    bad = {"1-D": torch.zeros(SR), "3-D": torch.zeros(1, 1, SR),
           "dtype": torch.zeros(1, SR, dtype=torch.int16), "empty": torch.zeros(1, 0),
           "n_sounds": torch.zeros(0, SR), "NaN": torch.full((1, SR), float("nan")),
           "infinite": torch.full((1, SR), float("inf"))}
    for word, audio in bad.items():
        for fn in (ast.get_timestamp_embeddings, ast.get_scene_embeddings):
            with pytest.raises(ValueError, match=word):
                fn(audio, embedder)
    with pytest.raises(ValueError, match="load_model"):
        ast.get_scene_embeddings(torch.zeros(1, SR), torch.nn.Linear(1, 1))
    other = tmp_path / "other.pt"
    save_checkpoint(other, family="kwmlp", config={}, state_dict={})
    with pytest.raises(ValueError, match="'kwmlp' model, not a 'ast'"):
        ast.load_model(str(other))
    with pytest.raises(ValueError, match="unknown ast option"):
        ast.load_model(str(path), pooling="mean")
    with pytest.raises(ValueError, match="scene_embedding"):
        ast.load_model(str(path), scene_embedding="max")
    with pytest.raises(ValueError, match="max_windows"):
        ast.load_model(str(path), max_windows=0)
    with pytest.raises(ValueError, match="smaller than one"):
        embedder.encoder.forward_features(torch.zeros(1, 16, 31))
    with pytest.raises(ValueError, match="log-mel"):
        embedder.encoder.forward_features(torch.zeros(1, 12, 128))
    for bad_config in (dict(pos_embed="rope"), dict(order="random"), dict(heads=5),
                       dict(pos_embed="alibi_2d", heads=1, dim=32),
                       dict(window_frames=20), dict(peg_blocks=3)):
        with pytest.raises(ValueError, match="invalid ASTConfig"):
            ASTConfig(**{**TINY, **bad_config})
    with pytest.raises(ValueError, match="unknown AST config keys"):
        ASTConfig.from_dict({**ASTConfig().to_dict(), "rope": 1})
    with pytest.raises(ValueError, match="unknown AST preset"):
        ASTConfig.preset("ast_huge")


# ---------------------------------------------------------------------------------------------
# training: a one-block AST on a tiny multilabel task


def write_mixture_task(root, seed=0):
    """3 sources (low tone, high tone, noise bursts), 1 s clips of 1-2 of them."""
    import numpy as np
    from hear_suite.tasks import TaskWriter

    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    sources = {"low": lambda: 0.3 * np.sin(2 * np.pi * rng.uniform(300, 500) * t),
               "high": lambda: 0.3 * np.sin(2 * np.pi * rng.uniform(2000, 3000) * t),
               "noise": lambda: 0.1 * rng.standard_normal(SR) * (t < 0.5)}
    with TaskWriter(root, task_name="mix", embedding_type="scene", prediction_type="multilabel",
                    sample_duration=1.0, evaluation=["mAP"]) as w:
        k = 0
        for split, n in (("train", 24), ("valid", 8), ("test", 8)):
            for _ in range(n):
                labels = sorted(rng.choice(list(sources), size=rng.integers(1, 3), replace=False))
                w.add(split, f"clip{k:03d}", sum(sources[s]() for s in labels), list(labels))
                k += 1
    return w.path


TRAIN_FAST = ["--dim", "32", "--depth", "1", "--heads", "2", "--ff-dim", "32", "--peg-blocks",
              "1", "--window-frames", "96", "--batch-size", "8", "--workers", "0",
              "--warmup-epochs", "2", "--seed", "3", "--swa-epochs", "1"]


def test_train_resume_and_load(tmp_path):
    from hear_suite import cli, training

    task = write_mixture_task(tmp_path / "tasks")

    def train(out, *extra):
        assert cli.main(["train", "ast", "--task-dir", str(task), "--out", str(out),
                         *TRAIN_FAST, *extra]) == 0

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(straight, "--epochs", "2")
    train(resumed, "--epochs", "1")
    train(resumed, "--epochs", "2")
    for run in (straight, resumed):
        assert (run / "curves.png").stat().st_size > 0 and (run / "best.pt").is_file()
        assert (run / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs
    a = training.load_training_state(straight / "last.pt")["model"]
    b = training.load_training_state(resumed / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = ast.load_model(str(straight / "ast_conditional.pt"))
    assert torch.equal(model.encoder.state_dict()["head.weight"], a["head.weight"])  # SWA of 1
    prov = load_checkpoint_provenance(straight / "ast_conditional.pt")
    assert 0.0 <= prov["test_mAP"] <= 1.0 and prov["clips"] == {"train": 24, "valid": 8, "test": 8}
    assert model.encoder.config.norm_std != 0.5  # statistics of the training log-mels
    emb, ts = ast.get_timestamp_embeddings(noise(2, SR), model)
    assert emb.shape == (2, 4, 32)
    with pytest.raises(SystemExit, match="another model"):
        train(resumed, "--epochs", "3", "--pe", "conditional", "--dim", "16")


def load_checkpoint_provenance(path):
    from hear_suite.checkpoint import load_checkpoint

    return load_checkpoint(path, "ast")["provenance"]


def test_finer_timestamp_hop_interleaves_shifted_passes():
    """``timestamp_hop_ms=80``: a timestamp every 80 ms (``L // 1280 + 1`` of them); every fourth
    is the default model's column; the others are its columns of the clip advanced by 80, 160,
    240 ms (exactly so where the skipped samples are silent, and from the second window on
    anyway); scenes do not change; batch == item; a hop that does not divide 320 ms is refused."""
    model = ast.load_model()
    fine = ast.load_model(timestamp_hop_ms=80)
    x = torch.rand(2, 7 * SR + 123, generator=torch.Generator().manual_seed(3)) * 2 - 1
    quiet_start = torch.cat([torch.zeros(2, 3 * 1280), x], dim=1)
    for audio in (x, quiet_start):
        emb, ts = ast.get_timestamp_embeddings(audio, fine)
        n_stamps = audio.shape[1] // 1280 + 1
        assert emb.shape == (2, n_stamps, 256)
        assert torch.equal(ts[0], 80.0 * torch.arange(n_stamps, dtype=torch.float32))
        want, _ = ast.get_timestamp_embeddings(audio, model)
        assert torch.equal(emb[:, ::4], want)
        for k in (1, 2, 3):
            want, _ = ast.get_timestamp_embeddings(audio[:, k * 1280:], model)
            got = emb[:, k::4]
            assert got.shape == want.shape
            first = 0 if audio is quiet_start else model.config.window_cols
            assert torch.equal(got[:, first:], want[:, first:]), k
        assert torch.equal(ast.get_scene_embeddings(audio, fine),
                           ast.get_scene_embeddings(audio, model))
        one, _ = ast.get_timestamp_embeddings(audio[1:], fine)
        assert torch.equal(one, emb[1:])
    # a clip shorter than the hop: one timestamp; 0.2 s: three (0, 80, 160 ms)
    assert ast.get_timestamp_embeddings(x[:, :100], fine)[0].shape == (2, 1, 256)
    assert ast.get_timestamp_embeddings(x[:, :3200], fine)[1].tolist()[0] == [0.0, 80.0, 160.0]
    for bad in (100, 0, -80, "80", True):
        with pytest.raises(ValueError, match="timestamp_hop_ms must divide the column hop of "
                                             "320 ms"):
            ast.load_model(timestamp_hop_ms=bad)


# ---------------------------------------------------------------------------------------------
# shipped weights


@pytest.mark.parametrize("name, pe", [("ast_conditional.pt", "conditional"),
                                      ("ast_absolute.pt", "absolute"),
                                      ("ast_real.pt", "conditional"),
                                      ("ast_real128.pt", "conditional")])
def test_shipped_weights(name, pe):
    """Each shipped file has the positional encoding its card says, at 256-d with 320 ms
    columns; the default is ``ast_real128.pt``, the conditional-PE AST on 128 mel bands (seed
    002's input) trained on real and synthetic label sets (their values are pinned in
    tests/golden_outputs.json)."""
    from golden import golden_audio

    model = ast.load_model(name)
    assert model.config.pos_embed == pe
    emb, ts = ast.get_timestamp_embeddings(golden_audio(), model)
    assert emb.shape == (2, 8, 256)
    assert torch.equal(ts[0], 320.0 * torch.arange(8, dtype=torch.float32))
    if name == MODELS["ast"].weights:
        default = ast.load_model().encoder.config
        assert default.n_mels == 128 and (default.patch_freq, default.patch_time) == (16, 32)
        assert default == model.encoder.config
        assert {label.split(":")[0] for label in default.labels} == {
            "pitch", "drum", "kind", "sound_mixtures"}


def test_torchrun_two_cpu_processes(tmp_path):
    """DDP: the global batch is split over 2 processes (each with a reader process), the
    replicas stay bit-identical (the trainer raises otherwise) and the shipped file records the
    world size."""
    repo = Path(__file__).resolve().parent.parent
    task = write_mixture_task(tmp_path / "tasks")
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(repo), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "hear_suite.cli", "train", "ast", "--task-dir", str(task), "--out", str(out),
           *TRAIN_FAST, "--epochs", "2", "--device", "cpu", "--workers", "1"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prov = load_checkpoint_provenance(out / "ast_conditional.pt")
    assert prov["world_size"] == 2
    # 24 train clips, global batch 8 split 4 + 4: 3 steps per epoch, as with one process
    with open(out / "metrics.csv") as f:
        assert [row["step"] for row in csv.DictReader(f)] == ["3", "6"]


def test_unit_range_normalisation_of_seed_003():
    """``ast_pe``: log(mel + 0.001) mapped to [0, 1] by the training minimum and maximum,
    negatives clipped; the default (AST) is (x - mean) / (2 std)."""
    from hear_suite.ast.model import Frontend, normalize

    c = ASTConfig.preset("ast_pe")
    assert (c.normalization, c.log_offset) == ("unit_range", 1e-3)
    c = c.replace(norm_min=-6.0, norm_max=2.0)
    x = torch.tensor([-8.0, -6.0, -2.0, 2.0, 4.0])
    assert torch.allclose(normalize(x, c), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.25]))
    d = ASTConfig(norm_mean=-2.0, norm_std=2.0)
    assert torch.allclose(normalize(x, d), (x + 2.0) / 4.0)
    audio = torch.zeros(1, 16000)
    mel = Frontend(c.replace(norm_min=0.0, norm_max=1.0))(audio)
    assert torch.allclose(mel, torch.zeros_like(mel))  # log(0 + 0.001) < 0: clipped
    with pytest.raises(ValueError, match="normalization"):
        ASTConfig(normalization="minmax")


def test_train_seed_003_normalisation(tmp_path):
    """``--preset ast_pe`` trains on [0, 1]-mapped log-mels with the training minimum/maximum
    (here with seed 003's 1/sqrt learning-rate decay too)."""
    from hear_suite import cli

    task = write_mixture_task(tmp_path / "tasks")
    out = tmp_path / "run"
    assert cli.main(["train", "ast", "--task-dir", str(task), "--out", str(out), "--preset",
                     "ast_pe", *TRAIN_FAST, "--epochs", "1", "--decay", "inverse_sqrt"]) == 0
    c = ast.load_model(str(out / "ast_conditional.pt")).config
    assert c.normalization == "unit_range" and c.log_offset == 1e-3
    assert c.norm_min < -5.0 < c.norm_max  # log(1e-3) = -6.9 is the floor of silence


def test_stft_domain_specaugment(tmp_path):
    """Seed 003 masks the linear STFT power before the mel filterbank: the identity transform
    gives the plain frontend, a masked frequency band lowers the mel bins it feeds; the trainer
    runs with ``--specaugment-on stft``."""
    from hear_suite import cli
    from hear_suite.ast.model import Frontend

    front = Frontend(ASTConfig.preset("small"))
    audio = noise(2, SR)
    assert torch.allclose(front(audio, lambda s: s), front(audio), atol=1e-5)

    def drop_band(spec):
        spec = spec.clone()
        spec[:, 100:140] = 0  # 3.1-4.4 kHz of the 512-point FFT
        return spec

    diff = front(audio) - front(audio, drop_band)
    assert (diff >= -1e-4).all() and diff.max() > 1.0  # only lowered, some bins a lot
    task = write_mixture_task(tmp_path / "tasks")
    assert cli.main(["train", "ast", "--task-dir", str(task), "--out", str(tmp_path / "run"),
                     *TRAIN_FAST, "--epochs", "1", "--specaugment-on", "stft",
                     "--freq-mask-width", "64", "--time-mask-width", "20"]) == 0


def test_train_from_imagenet_file(tmp_path):
    """``--imagenet FILE``: a local timm state dict (DeiT's ``{"model": ...}`` wrapper) loads
    into an ``ast``-layout model before training; a wrong file is refused by name."""
    from hear_suite import cli
    from hear_suite.checkpoint import save_atomic

    task = write_mixture_task(tmp_path / "tasks")
    deit = tmp_path / "deit_synthetic.pth"
    timm = synthetic_deit(dim=32, depth=1)
    save_atomic({"model": timm}, deit)
    args = ["train", "ast", "--task-dir", str(task), "--preset", "ast", "--pe", "absolute",
            "--dim", "32", "--depth", "1", "--heads", "4", "--ff-dim", "128", "--window-frames",
            "200", "--batch-size", "8", "--workers", "0", "--epochs", "1", "--swa-epochs", "1"]
    # a learning rate of ~0 keeps the initial weights: they must be the converted timm ones
    assert cli.main([*args, "--out", str(tmp_path / "run"), "--imagenet", str(deit),
                     "--lr", "1e-12"]) == 0
    model = ast.load_model(str(tmp_path / "run" / "ast_absolute.pt")).encoder
    assert torch.allclose(model.patch_embed.proj.weight,
                          timm["patch_embed.proj.weight"].sum(1, keepdim=True), atol=1e-6)
    assert torch.allclose(model.blocks[0].attn.qkv.weight, timm["blocks.0.attn.qkv.weight"])
    prov = load_checkpoint_provenance(tmp_path / "run" / "ast_absolute.pt")
    assert prov["imagenet_init"]["file"] == deit.name
    save_atomic({"model": synthetic_deit(dim=16, depth=1)}, deit)
    with pytest.raises(SystemExit, match="deit_synthetic.pth"):
        cli.main([*args, "--out", str(tmp_path / "bad"), "--imagenet", str(deit)])
