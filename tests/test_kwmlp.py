"""hear_suite.kwmlp: parity with a plain re-statement of the HEAR 2021 kwmlp procedure, the
original checkpoint layout, options and bad input."""
import math

import numpy as np
import pytest
import torch

import hear_suite.kwmlp as kwmlp
from hear_suite.checkpoint import save_atomic, save_checkpoint
from hear_suite.kwmlp import original
from hear_suite.kwmlp.embedder import KWMLPEmbedder
from hear_suite.kwmlp.io import export_original, save_encoder
from kwmlp_reference import reference_frames, reference_scene

SR = 16000
TOL = 1e-4
# < 10 ms, < 1 s, exactly 1 s, 1 s + 1 sample, not whole seconds, 20 minutes
LENGTHS = [100, 160, 8000, 16000, 16001, 31681, 20 * 60 * SR]


@pytest.fixture(scope="module")
def embedder(random_kwmlp):
    return KWMLPEmbedder(random_kwmlp)


@pytest.fixture(scope="module")
def original_sd(random_kwmlp):
    return original.to_original(random_kwmlp.state_dict(), random_kwmlp.config)["model_state_dict"]


def noise(n, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, length, generator=g) * 2 - 1


@pytest.mark.parametrize("length", LENGTHS)
def test_parity_with_reference(embedder, original_sd, length):
    audio = noise(2, length, seed=length % 1000)
    emb, ts = kwmlp.get_timestamp_embeddings(audio, embedder)
    scene = kwmlp.get_scene_embeddings(audio, embedder)
    for i in range(2):
        frames, n_ts = reference_frames(audio[i], original_sd, embedder.frontend.nnaudio)
        assert emb.shape[1] == n_ts == math.floor(length / 160)
        assert torch.equal(ts[i], 10.0 * torch.arange(1, n_ts + 1, dtype=torch.float32))
        if n_ts:
            assert (emb[i].double() - frames[:n_ts]).abs().max() < TOL
        assert np.abs(scene[i].double().numpy() - reference_scene(frames)).max() < TOL
    assert emb.dtype == ts.dtype == scene.dtype == torch.float32
    assert scene.shape == (2, 1024)


@pytest.mark.parametrize("pooling", ["single_interpolation", "group_mean"])
@pytest.mark.parametrize("length", [8000, 16000 * 3 + 5, 16000 * 61])
def test_scene_pooling_options(random_kwmlp, original_sd, pooling, length):
    model = KWMLPEmbedder(random_kwmlp, scene_pooling=pooling)
    audio = noise(1, length)
    frames, _ = reference_frames(audio[0], original_sd, model.frontend.nnaudio)
    scene = kwmlp.get_scene_embeddings(audio, model)[0].double().numpy()
    assert np.abs(scene - reference_scene(frames, pooling)).max() < TOL


@pytest.mark.parametrize("depth", [4, 8])
def test_tap_depth(random_kwmlp, original_sd, depth):
    model = KWMLPEmbedder(random_kwmlp, tap_depth=depth)
    audio = noise(1, 20000)
    frames, n_ts = reference_frames(audio[0], original_sd, model.frontend.nnaudio, depth=depth)
    emb, _ = kwmlp.get_timestamp_embeddings(audio, model)
    assert (emb[0].double() - frames[:n_ts]).abs().max() < TOL


def test_batch_equals_items_and_slices_do_not_matter(random_kwmlp):
    audio = noise(5, 37000)
    small = KWMLPEmbedder(random_kwmlp, max_chunks=1)
    big = KWMLPEmbedder(random_kwmlp, max_chunks=64)
    emb, _ = kwmlp.get_timestamp_embeddings(audio, big)
    for i in range(5):
        one, _ = kwmlp.get_timestamp_embeddings(audio[i:i + 1], small)
        assert torch.allclose(one[0], emb[i], atol=1e-5)
    assert torch.allclose(kwmlp.get_scene_embeddings(audio[1:3], small),
                          kwmlp.get_scene_embeddings(audio, big)[1:3], atol=1e-5)
    again, _ = kwmlp.get_timestamp_embeddings(audio, big)
    assert torch.equal(again, emb)


def test_original_checkpoint_round_trip(tmp_path, random_kwmlp, embedder):
    ours = tmp_path / "kwmlp.pt"
    save_encoder(ours, random_kwmlp, provenance={"test": True})
    pth = tmp_path / "kwmlp.pth"
    export_original(ours, pth)
    sd = torch.load(pth, weights_only=True)["model_state_dict"]
    assert sum(v.numel() for v in sd.values()) == 424_811
    assert sd["layers.11.fn.fn.sgu.proj.weight"].shape == (98, 98, 1)
    # the original files also carried training state next to the weights
    save_atomic({"model_state_dict": sd, "epoch": 140, "optimizer_state_dict": {}}, pth)
    audio = noise(2, 24000)
    want = kwmlp.get_scene_embeddings(audio, embedder)
    for path in (ours, pth):
        model = kwmlp.load_model(str(path))
        assert torch.equal(kwmlp.get_scene_embeddings(audio, model), want)
    # and back: original -> hear_suite keys load strictly
    config, state = original.from_original(sd)
    assert config.depth == 12 and config.dim == 64
    assert set(state) == set(random_kwmlp.state_dict())


def test_bad_checkpoints_and_options(tmp_path, random_kwmlp):
    good = tmp_path / "good.pt"
    save_encoder(good, random_kwmlp)
    other = tmp_path / "other.pt"
    save_checkpoint(other, family="ast", config={}, state_dict={})
    with pytest.raises(ValueError, match="'ast' model, not a 'kwmlp'"):
        kwmlp.load_model(str(other))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(RuntimeError, match="truncated or corrupt"):
        kwmlp.load_model(str(truncated))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(RuntimeError, match="not a torch checkpoint|truncated or corrupt"):
        kwmlp.load_model(str(garbage))
    with pytest.raises(FileNotFoundError):
        kwmlp.load_model(str(tmp_path / "missing.pt"))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="neither a hear_suite kwmlp checkpoint nor"):
        kwmlp.load_model(str(foreign))
    with pytest.raises(ValueError, match="unknown kwmlp option"):
        kwmlp.load_model(str(good), pooling="mean")
    with pytest.raises(ValueError, match="tap_depth"):
        kwmlp.load_model(str(good), tap_depth=13)
    with pytest.raises(ValueError, match="unknown scene pooling"):
        kwmlp.load_model(str(good), scene_pooling="max")


def test_device_and_dtype(embedder):
    audio = noise(1, 20000).double()
    emb, ts = kwmlp.get_timestamp_embeddings(audio, embedder)
    assert emb.dtype == ts.dtype == torch.float32 and emb.device == audio.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(random_kwmlp):
    cpu = KWMLPEmbedder(random_kwmlp)
    gpu = KWMLPEmbedder(random_kwmlp).to("cuda")
    audio = noise(3, 50000)
    want = kwmlp.get_scene_embeddings(audio, cpu)
    got = kwmlp.get_scene_embeddings(audio.cuda(), gpu)
    assert got.device.type == "cuda" and torch.allclose(got.cpu(), want, atol=1e-4)
    on_cpu = kwmlp.get_scene_embeddings(audio, gpu)  # audio on CPU, model on GPU
    assert on_cpu.device.type == "cpu" and torch.allclose(on_cpu, want, atol=1e-4)


@pytest.mark.parametrize("length", [16000, 16480, 48000])
def test_fft_frontend_equals_nnaudio_conv_stft(length):
    """On the CPU the MFCC's STFT is an FFT of nnAudio's windowed frames and its mel filters and
    DCT are matrix products (oneDNN); the result equals nnAudio's own layer within float32
    rounding, quiet and silent clips included (their per-item top_db floor is where rounding
    shows most)."""
    from hear_suite.kwmlp.model import KWMLPConfig, build_frontend

    frontend = build_frontend(KWMLPConfig())
    audio = noise(4, length, seed=length)
    audio[1] *= 1e-3
    audio[2] = 0.0
    fft, conv = frontend(audio), frontend.nnaudio(audio)
    assert fft.shape == conv.shape == (4, 40, 1 + (length - 480) // 160)
    # MFCC values reach hundreds of dB-units (coefficient 0 of silence: -632.5, where a float32
    # step is 6e-5); float32 rounding of the power spectrum and of the DCT as a matrix product
    # moves them by a few of those steps; elsewhere by < 2e-4
    assert torch.allclose(fft, conv, rtol=2e-6, atol=2e-4)
    assert torch.equal(frontend(audio[:, None, :]), frontend.nnaudio(audio[:, None, :]))
