"""hear_suite.onednn: the oneDNN linear equals F.linear (+ exact GELU), falls back where it must,
and the models embed the same with and without it."""
import pytest
import torch
import torch.nn.functional as F

import hear_suite.kwmlp as kwmlp
from hear_suite import onednn
from hear_suite.kwmlp.embedder import KWMLPEmbedder

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="PyTorch built without oneDNN")


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@needs_onednn
@pytest.mark.parametrize("activation", [None, "gelu", "relu"])
@pytest.mark.parametrize("layout", ["2d", "3d", "transposed", "no bias"])
def test_linear_equals_f_linear(activation, layout):
    x, w, b = randn(7, 98, 64, seed=1) * 3, randn(130, 64, seed=2) * 0.2, randn(130, seed=3)
    if layout == "2d":
        x = x.reshape(-1, 64)
    elif layout == "transposed":
        x, w = x.transpose(1, 2), randn(130, 98, seed=4) * 0.2   # strided input
    elif layout == "no bias":
        b = None
    with torch.no_grad():
        assert onednn.usable(x, w, b)
        got = onednn.linear(x, w, b, activation=activation)
    want = F.linear(x, w, b)
    want = {None: want, "gelu": F.gelu(want), "relu": F.relu(want)}[activation]
    assert got.shape == want.shape and got.is_contiguous()
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_falls_back_for_autograd_and_other_dtypes():
    x = randn(5, 16, seed=1).requires_grad_()
    w = randn(8, 16, seed=2).requires_grad_()
    assert not onednn.usable(x, w, None)   # autograd needs the graph
    onednn.linear(x, w, activation="gelu").sum().backward()
    x2, w2 = x.detach().requires_grad_(), w.detach().requires_grad_()
    F.gelu(F.linear(x2, w2)).sum().backward()
    assert torch.equal(x.grad, x2.grad) and torch.equal(w.grad, w2.grad)
    with torch.no_grad():
        assert not onednn.usable(x.double(), w.double(), None)
        assert torch.equal(onednn.linear(x.double(), w.double()), F.linear(x.double(), w.double()))
        assert not onednn.usable(x[:0], w, None)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not onednn.usable(x, w, None)
            assert onednn.linear(x, w).dtype == torch.bfloat16
        assert onednn.linear(x[:0], w).shape == (0, 8)


def test_disabled_is_plain_f_linear(monkeypatch):
    monkeypatch.setattr(onednn, "ENABLED", False)
    x, w, b = randn(9, 12, seed=1), randn(6, 12, seed=2), randn(6, seed=3)
    with torch.no_grad():
        assert not onednn.usable(x, w, b)
        assert torch.equal(onednn.linear(x, w, b, activation="gelu"), F.gelu(F.linear(x, w, b)))


def test_bad_activation_is_named():
    with pytest.raises(ValueError, match="activation.*'tanh'"):
        onednn.linear(randn(2, 3), randn(4, 3), activation="tanh")


@needs_onednn
def test_kwmlp_embeds_the_same_without_onednn(monkeypatch, random_kwmlp):
    """The whole CPU inference path (FFT MFCC, encoder) with and without oneDNN."""
    model = KWMLPEmbedder(random_kwmlp)
    audio = randn(3, 40000, seed=5).clamp(-1, 1)
    emb, _ = kwmlp.get_timestamp_embeddings(audio, model)
    scene = kwmlp.get_scene_embeddings(audio, model)
    monkeypatch.setattr(onednn, "ENABLED", False)
    emb_plain, _ = kwmlp.get_timestamp_embeddings(audio, model)
    assert (emb - emb_plain).abs().max() < 1e-5
    assert (scene - kwmlp.get_scene_embeddings(audio, model)).abs().max() < 1e-5
