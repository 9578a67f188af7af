"""hear_suite.logmel, the no-learning floor: a numpy re-statement of its log-mel frames, frame
centres and counts, the scene statistics, block computation, options and the refused weights file.
The HEAR contract (batches, bad audio, foreign models) is in test_hear_contract.py."""
import numpy as np
import pytest
import torch
from scipy.signal import get_window

import hear_suite.logmel as logmel
from hear_suite.logmel.embedder import LogMelEmbedder

SR, WIN, HOP, N_FFT, N_MELS, EPS = 16000, 400, 160, 512, 128, 1e-6
# one sample, < one hop, < one window, one window, one window + 1, 1 s, 1 s + 1, not whole hops
LENGTHS = [1, 100, 399, 400, 401, 16000, 16001, 24321]


def noise(n, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, length, generator=g) * 2 - 1


def slaney_mel(n_mels=N_MELS, n_fft=N_FFT, sr=SR):
    """Slaney mel filterbank ``(n_mels, n_fft // 2 + 1)``: linear mel below 1 kHz, logarithmic
    above; triangles between neighbouring band edges, scaled to equal area."""
    f_lin, mel_lin = 200.0 / 3, 1000.0 / (200.0 / 3)
    step = np.log(6.4) / 27.0

    def to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f < 1000, f / f_lin, mel_lin + np.log(np.maximum(f, 1e-9) / 1000) / step)

    def to_hz(m):
        return np.where(m < mel_lin, m * f_lin, 1000 * np.exp(step * (m - mel_lin)))

    edges = to_hz(np.linspace(to_mel(0.0), to_mel(sr / 2), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    lower = (freqs[None] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - freqs[None]) / (edges[2:] - edges[1:-1])[:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def reference_log_mel(x: np.ndarray) -> np.ndarray:
    """``(L,)`` -> ``(L // HOP + 1, N_MELS)``: half a window of zeros on both sides, periodic
    Hann frames every HOP, power spectrum at N_FFT points, mel, log(+EPS), in float64."""
    padded = np.pad(x.astype(np.float64), (WIN // 2, WIN // 2))
    n_frames = (len(padded) - WIN) // HOP + 1
    idx = HOP * np.arange(n_frames)[:, None] + np.arange(WIN)
    spectrum = np.abs(np.fft.rfft(padded[idx] * get_window("hann", WIN), n=N_FFT)) ** 2
    return np.log(spectrum @ slaney_mel().T + EPS)


@pytest.fixture(scope="module")
def model():
    return logmel.load_model()


@pytest.mark.parametrize("length", LENGTHS)
def test_frames_and_timestamps_match_reference(model, length):
    audio = noise(2, length, seed=length)
    emb, ts = logmel.get_timestamp_embeddings(audio, model)
    n_frames = length // HOP + 1
    assert emb.shape == (2, n_frames, N_MELS) and ts.shape == (2, n_frames)
    assert torch.equal(ts[1], 10.0 * torch.arange(n_frames, dtype=torch.float32))
    assert ts.max() <= 1000 * length / SR  # every frame centre lies inside the clip
    for i in range(2):
        want = reference_log_mel(audio[i].numpy())
        # float32 STFT against float64: the error in log units grows where the power is small
        assert np.abs(emb[i].double().numpy() - want).max() < 2e-4


def test_silence_is_the_log_offset(model):
    emb, _ = logmel.get_timestamp_embeddings(torch.zeros(1, 5000), model)
    scene = logmel.get_scene_embeddings(torch.zeros(1, 5000), model)
    assert torch.allclose(emb, torch.full_like(emb, np.log(EPS)))
    assert torch.allclose(scene[0, :N_MELS], torch.full((N_MELS,), np.log(EPS)))
    assert scene[0, N_MELS:].abs().max() < 1e-6


@pytest.mark.parametrize("length", [1, 399, 16000, 24321])
def test_scene_is_mean_and_std_of_frames(model, length):
    audio = noise(3, length, seed=7)
    emb, _ = logmel.get_timestamp_embeddings(audio, model)
    scene = logmel.get_scene_embeddings(audio, model)
    frames = emb.double()
    want = torch.cat([frames.mean(1), frames.std(1, unbiased=False)], dim=1)
    assert scene.shape == (3, 2 * N_MELS) and scene.dtype == torch.float32
    assert (scene.double() - want).abs().max() < 1e-5


@pytest.mark.parametrize("max_frames", [1, 37, 3 * 301])
def test_blocks_equal_one_shot(max_frames):
    """Blocks within a clip (1, 37 frames) and of several whole clips (3 x 301 frames) give the
    one-shot frames and statistics."""
    audio = noise(3, 3 * SR + 5, seed=3)
    whole = LogMelEmbedder(max_frames=10 ** 6)
    blocked = LogMelEmbedder(max_frames=max_frames)
    emb, ts = whole.timestamp_embeddings(audio)
    got, got_ts = blocked.timestamp_embeddings(audio)
    # another conv length may change float32 rounding, which the log amplifies in quiet bands
    assert torch.equal(ts, got_ts) and (got - emb).abs().max() < 2e-4
    assert (blocked.scene_embeddings(audio) - whole.scene_embeddings(audio)).abs().max() < 1e-5


def test_long_clip_scene_in_blocks(model):
    """Two minutes (12,001 frames, four blocks of the default 4,000): the block-merged
    statistics equal numpy's over the frames, on a clip whose blocks have very different means
    (a quiet first minute, a loud second)."""
    audio = noise(1, 120 * SR, seed=5)
    audio[:, : 60 * SR] *= 1e-3
    emb, _ = logmel.get_timestamp_embeddings(audio, model)
    scene = logmel.get_scene_embeddings(audio, model)[0].double().numpy()
    frames = emb[0].double().numpy()
    want = np.concatenate([frames.mean(0), frames.std(0)])
    assert emb.shape[1] == 12001 and np.abs(scene - want).max() < 1e-5


def test_weights_file_and_bad_options_are_refused(tmp_path):
    for empty in (None, ""):
        assert isinstance(logmel.load_model(empty), LogMelEmbedder)
    path = tmp_path / "logmel.pt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="no weights"):
        logmel.load_model(str(path))
    for bad in (0, -1, 2.5, True, "100"):
        with pytest.raises(ValueError, match="max_frames"):
            logmel.load_model(max_frames=bad)
    model = logmel.load_model(max_frames=50)
    assert (model.sample_rate, model.timestamp_embedding_size, model.scene_embedding_size) == \
        (SR, N_MELS, 2 * N_MELS)
    assert sum(p.numel() for p in model.parameters()) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(model):
    audio = noise(2, 3 * SR + 17, seed=11)
    gpu = logmel.load_model().to("cuda")
    emb, ts = logmel.get_timestamp_embeddings(audio.cuda(), gpu)
    scene = logmel.get_scene_embeddings(audio.cuda(), gpu)
    want_emb, want_ts = logmel.get_timestamp_embeddings(audio, model)
    assert emb.device.type == ts.device.type == scene.device.type == "cuda"
    assert torch.equal(ts.cpu(), want_ts) and (emb.cpu() - want_emb).abs().max() < 1e-3
    assert (scene.cpu() - logmel.get_scene_embeddings(audio, model)).abs().max() < 1e-4


@pytest.mark.parametrize("n_fft, win", [(512, 400), (400, 400)])
def test_fft_frontend_equals_nnaudio_conv_stft(n_fft, win):
    """On the CPU the log-mel's power spectrum is an FFT and its mel filters a matrix product; it
    equals nnAudio's convolution path (taken for 3-D input) within float32 rounding, quiet and
    silent clips and an STFT-domain transform (SpecAugment's place) included."""
    from hear_suite import frontends

    layer = frontends.log_mel(sample_rate=SR, n_mels=N_MELS, n_fft=n_fft, win_length=win,
                              hop_length=HOP, fmin=20.0, fmax=8000.0, eps=EPS)
    audio = noise(4, 16000 + 77, seed=n_fft)
    audio[1] *= 1e-3
    audio[2] = 0.0
    frames = 1 + (audio.shape[1] - win) // HOP
    fft, conv = layer(audio), layer(audio[:, None, :])
    assert fft.shape == conv.shape == (4, N_MELS, frames)
    assert torch.allclose(fft, conv, rtol=1e-5, atol=1e-4)

    def mask(spec):  # (n, freq, frames): silence bins 10-19 and frames 5-9
        spec = spec.clone()
        spec[:, 10:20] = 0
        spec[:, :, 5:10] = 0
        return spec

    fft, conv = layer(audio, mask), layer(audio[:, None, :], mask)
    assert torch.allclose(fft, conv, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(fft, layer(audio), atol=1e-2)  # the transform was applied
