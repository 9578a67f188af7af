"""hear_suite.onednn: the oneDNN linear equals F.linear (activations, products, transposed
weights, gradients), falls back where it must, and the models embed and train the same with and
without it."""
import pytest
import torch
import torch.nn.functional as F

import hear_suite.kwmlp as kwmlp
from hear_suite import onednn
from hear_suite.kwmlp.embedder import KWMLPEmbedder

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="PyTorch built without oneDNN")


@pytest.fixture(autouse=True)
def onednn_on(monkeypatch):
    """oneDNN on whatever the CPU (by default it is on only with AVX-512)."""
    monkeypatch.setattr(onednn, "ENABLED", True)


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


@needs_onednn
@pytest.mark.parametrize("case", ["gelu", "relu", "multiply", "no bias", "transposed weight"])
def test_gradients_equal_f_linear(case):
    """Under autograd the products of forward and backward are oneDNN's: values and gradients of
    x, weight, bias (and the multiply operand) as with F.linear."""
    x, w, b = randn(4, 9, 16, seed=1), randn(12, 16, seed=2) * 0.3, randn(12, seed=3)
    other = randn(4, 9, 12, seed=4)
    activation = case if case in ("gelu", "relu") else None
    b = None if case == "no bias" else b
    if case == "transposed weight":   # A @ B as linear(A, B.t()), the token mixing's form
        x, w, b = randn(12, 16, seed=1), randn(16, 40, seed=2).t(), randn(40, seed=3)
    leaves = [t.clone().requires_grad_() for t in (x, w, b, other) if t is not None]
    ours, plain = leaves, [t.detach().clone().requires_grad_() for t in leaves]
    for (xx, ww, *rest), fn in ((ours, onednn.linear), (plain, None)):
        bb = rest[0] if b is not None else None
        mm = rest[-1] if case == "multiply" else None
        if fn is None:
            y = F.linear(xx, ww, bb)
            y = {None: y, "gelu": F.gelu(y), "relu": F.relu(y)}[activation]
            y = y * mm if mm is not None else y
        else:
            assert onednn.usable(xx, ww, bb)
            y = fn(xx, ww, bb, activation=activation, multiply=mm)
        (y.square() * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
    for a, p in zip(ours, plain):
        if a.grad is not None or p.grad is not None:
            assert torch.allclose(a.grad, p.grad, rtol=1e-4, atol=1e-4), case


def test_falls_back_for_other_dtypes_autocast_and_empty_input():
    x, w = randn(5, 16, seed=1), randn(8, 16, seed=2)
    with torch.no_grad():
        assert not onednn.usable(x.double(), w.double(), None)
        assert torch.equal(onednn.linear(x.double(), w.double()), F.linear(x.double(), w.double()))
        assert not onednn.usable(x[:0], w, None)
        assert onednn.linear(x[:0], w).shape == (0, 8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not onednn.usable(x, w, None)
            assert onednn.linear(x, w).dtype == torch.bfloat16


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
