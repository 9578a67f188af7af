"""``hear-suite embed`` and :mod:`hear_suite.streaming`: mixed formats, rates and channels, a
20-minute file streamed equal to the whole-file call, bad files reported, resume after an
interruption, shards whose union is the unsharded run, a third-party HEAR module."""
import csv
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import hear_suite.ast as hast
import hear_suite.bagofcodes as boc
import hear_suite.kwmlp as kwmlp
import hear_suite.logmel as logmel
from hear_suite.audio import resample
from hear_suite.embed import embed_files
from hear_suite.embed.inputs import Item, find_inputs, read_clip
from hear_suite.streaming import ClipSource, resampled_reader


def tone(seconds, rate, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * (220 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([x * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    (root / "a").mkdir()
    (root / "b").mkdir()
    (root / "long").mkdir()
    (root / "bad").mkdir()
    sf.write(root / "a/tone_8k.wav", tone(2.0, 8000, seed=1), 8000)
    sf.write(root / "a/tone_22k.flac", tone(3.0, 22050, seed=2), 22050)
    sf.write(root / "b/stereo_44k.wav", tone(2.5, 44100, channels=2, seed=3), 44100)
    sf.write(root / "b/tone_48k.ogg", tone(2.0, 48000, seed=4), 48000)
    for k in range(3):  # same length: one batch
        sf.write(root / f"a/word_{k}.wav", tone(1.0, 16000, seed=5 + k), 16000)
    # 20 minutes at 22.05 kHz, written in blocks
    with sf.SoundFile(root / "long/twenty_minutes.wav", "w", 22050, 1, "PCM_16") as f:
        for block in range(20):
            f.write(tone(60.0, 22050, seed=10 + block)[:, 0])
    (root / "bad/corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    sf.write(root / "bad/empty.wav", np.zeros((0, 1), np.float32), 16000)
    nan = tone(1.5, 16000, seed=9)
    nan[100] = np.nan
    sf.write(root / "bad/nan.wav", nan, 16000, subtype="FLOAT")
    return root


def rows_by_output(rows):
    return {r["output"]: r for r in rows}


def test_inputs_names_lists_and_globs(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(folder)
    items = find_inputs(["a", "b/*.wav"])
    assert [i.name for i in items] == ["b/stereo_44k.wav", "tone_22k.flac", "tone_8k.wav",
                                       "word_0.wav", "word_1.wav", "word_2.wav"]
    listing = tmp_path / "files.txt"
    listing.write_text(f"# two files\n{folder / 'a/tone_8k.wav'}\n\n{folder / 'b'}\n")
    assert [i.path.name for i in find_inputs([str(listing)])] == [
        "tone_8k.wav", "stereo_44k.wav", "tone_48k.ogg"]
    assert len(find_inputs(["a", "b/../a"])) == 5               # one file found twice: once
    (tmp_path / "other").mkdir()
    sf.write(tmp_path / "other/tone_8k.wav", tone(0.5, 8000), 8000)
    with pytest.raises(ValueError, match="two inputs would write the same outputs"):
        find_inputs(["a", str(tmp_path / "other")])
    with pytest.raises(FileNotFoundError, match="no file, folder or pattern"):
        find_inputs(["nowhere.wav"])


def test_resampled_blocks_equal_whole_resampling():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(70_001).astype(np.float32)
    for orig in (8000, 22050, 44100, 48000, 11025):
        whole = resample(x, orig, 16000)
        length, read = resampled_reader(lambda lo, hi: x[lo:hi], x.size, orig, 16000)
        assert length == whole.size
        for lo, hi in ((0, 1000), (12_345, 12_345 + 7_777), (whole.size - 500, whole.size), (5, 5)):
            assert np.abs(read(lo, hi) - whole[lo:hi]).max(initial=0) <= 1e-6


MODELS = {
    "logmel": lambda: (logmel, logmel.load_model(max_frames=700)),
    "kwmlp": lambda: (kwmlp, kwmlp.load_model(max_chunks=7)),
    "kwmlp-single": lambda: (kwmlp, kwmlp.load_model(max_chunks=5,
                                                     scene_pooling="single_interpolation")),
    "kwmlp-groups": lambda: (kwmlp, kwmlp.load_model(max_chunks=5, scene_pooling="group_mean")),
    "ast": lambda: (hast, hast.load_model(max_windows=3)),
    "ast-patch-mean": lambda: (hast, hast.load_model(max_windows=2, scene_embedding="patch_mean")),
    "bagofcodes": lambda: (boc, boc.load_model(max_frames=300)),
    # the variants' extra parts (middle level, the floor's frames and a second pass) stream too
    "kwmlp-2level+mel": lambda: (kwmlp, kwmlp.load_model(max_chunks=5, embedding="2level+mel")),
    "ast-2level+mel": lambda: (hast, hast.load_model(max_windows=2, embedding="2level+mel")),
    # timestamps every 80 ms: four interleaved passes, in lockstep block by block
    "ast-80ms-2level+mel": lambda: (hast, hast.load_model(max_windows=2, timestamp_hop_ms=80,
                                                          embedding="2level+mel")),
    "ast-160ms-patch-mean": lambda: (hast, hast.load_model(
        max_windows=3, timestamp_hop_ms=160, scene_embedding="patch_mean")),
    "bagofcodes-2level+mel-sqrt": lambda: (boc, boc.load_model(
        max_frames=300, embedding="2level+mel", histogram_scaling="sqrt")),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("seconds", [0.05, 3.3, 47.3])
def test_stream_equals_whole_clip(name, seconds):
    hear, model = MODELS[name]()
    x = torch.rand(1, int(seconds * 16000), generator=torch.Generator().manual_seed(1)) * 2 - 1
    want_emb, want_ts = hear.get_timestamp_embeddings(x, model)
    want_scene = hear.get_scene_embeddings(x, model)[0]
    emb, ts = [], []
    scene = model.stream(ClipSource.of_tensor(x), on_timestamps=lambda e, t: (emb.append(e),
                                                                               ts.append(t)))
    assert torch.allclose(torch.cat(emb), want_emb[0], atol=1e-5)
    assert torch.equal(torch.cat(ts), want_ts[0])
    assert torch.allclose(scene, want_scene, atol=1e-5, rtol=1e-5)
    assert model.stream(ClipSource.of_tensor(x), scene=False) is None


def test_source_refuses_nan():
    x = torch.zeros(1, 20_000)
    x[0, 15_000] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        kwmlp.load_model().stream(ClipSource.of_tensor(x))


def test_folder_of_mixed_files_with_a_long_one(folder, tmp_path):
    out = tmp_path / "emb"
    rows = embed_files([str(folder)], out, module="hear_suite.kwmlp", batch_seconds=30,
                       workers=2, progress=False)
    by = rows_by_output(rows)
    assert len(rows) == 11
    errors = {k: r["error"] for k, r in by.items() if r["status"] == "error"}
    assert set(errors) == {"bad/corrupt.wav", "bad/empty.wav", "bad/nan.wav"}
    assert "not a readable audio file" in errors["bad/corrupt.wav"]
    assert "no audio" in errors["bad/empty.wav"] and "NaN" in errors["bad/nan.wav"]
    with open(out / "index.csv", newline="") as f:
        assert {r["output"]: r["status"] for r in csv.DictReader(f)} == {
            k: r["status"] for k, r in by.items()}
    model = kwmlp.load_model()
    for name in ("a/tone_8k.wav", "a/tone_22k.flac", "b/stereo_44k.wav", "b/tone_48k.ogg",
                 "a/word_1.wav", "long/twenty_minutes.wav"):
        r = by[name]
        assert r["status"] == "embedded", r
        audio = torch.from_numpy(read_clip(Item(folder / name, name), 16000))[None]
        scene = np.load(out / f"{name}.scene.npy")
        emb = np.load(out / f"{name}.timestamp.npy")
        ts = np.load(out / f"{name}.timestamps_ms.npy")
        want_emb, want_ts = kwmlp.get_timestamp_embeddings(audio, model)
        assert np.allclose(scene, kwmlp.get_scene_embeddings(audio, model)[0], atol=1e-5)
        assert np.allclose(emb, want_emb[0], atol=1e-5) and np.array_equal(ts, want_ts[0])
        assert r["scene_shape"] == "1024" and r["timestamp_shape"] == f"{emb.shape[0]} x 64"
    assert by["long/twenty_minutes.wav"]["timestamp_shape"] == "120000 x 64"
    assert by["b/stereo_44k.wav"]["channels"] == 2
    assert not list(out.rglob("*.tmp"))
    # a rerun embeds nothing
    again = rows_by_output(embed_files([str(folder)], out, batch_seconds=30, progress=False))
    assert {k for k, r in again.items() if r["status"] == "already done"} == {
        k for k, r in by.items() if r["status"] == "embedded"}


def test_interrupted_run_resumes(folder, tmp_path, monkeypatch):
    """A run stopped in the middle (KeyboardInterrupt from the model, as a kill) leaves only
    whole outputs; the rerun embeds the rest, and the result equals an uninterrupted run."""
    from plugins import toy_plugin

    inputs = [str(folder / "a"), str(folder / "b")]
    straight = tmp_path / "straight"
    embed_files(inputs, straight, module="plugins.toy_plugin", batch_seconds=1, progress=False)
    calls = {"n": 0}
    scene = toy_plugin.get_scene_embeddings

    def interrupting(audio, model):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return scene(audio, model)

    monkeypatch.setattr(toy_plugin, "get_scene_embeddings", interrupting)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        embed_files(inputs, out, module="plugins.toy_plugin", batch_seconds=1, progress=False)
    assert len(list(out.rglob("*.scene.npy"))) == 2 and not (out / "index.csv").exists()
    monkeypatch.setattr(toy_plugin, "get_scene_embeddings", scene)
    rows = embed_files(inputs, out, module="plugins.toy_plugin", batch_seconds=1, progress=False)
    assert sorted(r["status"] for r in rows) == ["already done"] * 2 + ["embedded"] * 5
    for f in straight.rglob("*.npy"):
        assert np.array_equal(np.load(f), np.load(out / f.relative_to(straight)))
    assert not list(out.rglob(".*"))


def test_shards_union_equals_unsharded(folder, tmp_path):
    inputs = [str(folder / "a"), str(folder / "b")]
    whole = embed_files(inputs, tmp_path / "whole", module="plugins.toy_plugin", progress=False)
    for i in range(3):
        embed_files(inputs, tmp_path / "sharded", module="plugins.toy_plugin", shard_of=(i, 3),
                    progress=False)
    merged = (tmp_path / "sharded/index.csv").read_text()
    assert (tmp_path / "whole/index.csv").read_text() == merged
    assert len(whole) == 7
    for f in (tmp_path / "whole").rglob("*.npy"):
        assert np.array_equal(np.load(f), np.load(tmp_path / "sharded" / f.relative_to(
            tmp_path / "whole")))


def test_third_party_module_npz_and_channels(folder, tmp_path):
    """A module without streaming gets whole files; npz archives; each channel on its own."""
    from plugins import toy_plugin

    out = tmp_path / "npz"
    rows = rows_by_output(embed_files([str(folder / "b")], out, module="plugins.toy_plugin",
                                      model_options={"n_bands": 16}, channels="each", fmt="npz",
                                      batch_seconds=1.0, progress=False))
    assert set(rows) == {"stereo_44k.wav.ch0", "stereo_44k.wav.ch1", "tone_48k.ogg"}
    model = toy_plugin.load_model(n_bands=16)
    for name, channel in (("stereo_44k.wav.ch1", 1), ("tone_48k.ogg", None)):
        source = folder / "b" / name.split(".ch")[0]
        audio = torch.from_numpy(read_clip(Item(source, name, channel), 16000))[None]
        with np.load(out / f"{name}.npz") as z:
            assert np.allclose(z["scene"], toy_plugin.get_scene_embeddings(audio, model)[0])
            emb, ts = toy_plugin.get_timestamp_embeddings(audio, model)
            assert np.allclose(z["timestamp"], emb[0]) and np.allclose(z["timestamps_ms"], ts[0])
        assert rows[name]["timestamp_shape"] == f"{emb.shape[1]} x 16"


def test_command_line_and_exit_status(folder, tmp_path):
    def embed(*args):  # in the audio folder: a file named directly keeps its relative path
        return subprocess.run([sys.executable, "-m", "hear_suite.cli", "embed", "--quiet",
                               "--module", "hear_suite.logmel", *map(str, args)],
                              capture_output=True, text=True, cwd=folder)

    good = embed("a/tone_8k.wav", "bad", "--out", tmp_path / "o", "--scene")
    assert good.returncode == 0, good.stderr
    assert "1 embedded" in good.stdout and "3 failed" in good.stdout
    assert (tmp_path / "o/a/tone_8k.wav.scene.npy").is_file()
    assert not (tmp_path / "o/a/tone_8k.wav.timestamp.npy").exists()
    strict = embed("a/tone_8k.wav", "bad", "--out", tmp_path / "o", "--strict")
    assert strict.returncode == 1
    nothing = embed("bad", "--out", tmp_path / "p")
    assert nothing.returncode == 1 and "empty.wav" in nothing.stderr
    if not torch.cuda.is_available():
        no_gpu = embed("a/tone_8k.wav", "--out", tmp_path / "r", "--device", "cuda")
        assert no_gpu.returncode == 1 and "no CUDA device" in no_gpu.stderr
    missing = embed(tmp_path / "nowhere.wav", "--out", tmp_path / "q")
    assert missing.returncode == 1 and "no file, folder or pattern" in missing.stderr
