"""The HEAR contract, checked the same way for every registered embedding model with its shipped
weights (the log-mel floor has none): declared sizes, float32 without NaN, even timestamps
inside the clip, a batch equals its items, repeated runs are identical, and bad input is refused
with an error naming the problem."""
import importlib

import pytest
import torch

from hear_suite.registry import MODELS

# every model family, and the modules named after a variant (hear_suite.kwmlp_2levelmel, ...)
MODULES = sorted({entry.module for entry in MODELS.values()}
                 | {f"hear_suite.{name}_2levelmel" for name in ("kwmlp", "ast", "bagofcodes")})


@pytest.fixture(scope="module", params=MODULES)
def plugin(request):
    module = importlib.import_module(request.param)
    return module, module.load_model()


def noise(n, length, seed=0):
    return torch.rand(n, length, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_sizes_dtypes_and_timestamps(plugin):
    hear, model = plugin
    assert model.sample_rate == 16000
    audio = noise(3, 16000 * 4 + 321)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    scene = hear.get_scene_embeddings(audio, model)
    assert emb.shape[0] == ts.shape[0] == 3 and emb.shape[1] == ts.shape[1] > 0
    assert emb.shape[2] == model.timestamp_embedding_size
    assert scene.shape == (3, model.scene_embedding_size)
    for x in (emb, ts, scene):
        assert x.dtype == torch.float32 and bool(torch.isfinite(x).all())
    hops = ts[:, 1:] - ts[:, :-1]
    assert (hops - hops.mean()).abs().max() < 1.0 and ts.max() <= 1000 * audio.shape[1] / 16000


def test_batch_equals_items_and_runs_repeat(plugin):
    hear, model = plugin
    audio = noise(3, 25000, seed=1)
    emb, _ = hear.get_timestamp_embeddings(audio, model)
    scene = hear.get_scene_embeddings(audio, model)
    for i in range(3):
        one, _ = hear.get_timestamp_embeddings(audio[i:i + 1], model)
        assert torch.allclose(one[0], emb[i], atol=1e-4)
        assert torch.allclose(hear.get_scene_embeddings(audio[i:i + 1], model)[0], scene[i],
                              atol=1e-4)
    assert torch.equal(hear.get_scene_embeddings(audio, model), scene)


BAD_AUDIO = {
    "1-D": torch.zeros(16000),
    "3-D": torch.zeros(1, 1, 16000),
    "dtype": torch.zeros(1, 16000, dtype=torch.int16),
    "empty": torch.zeros(1, 0),
    "n_sounds": torch.zeros(0, 16000),
    "NaN": torch.full((1, 16000), float("nan")),
    "infinite": torch.full((1, 16000), float("inf")),
}
# a NaN after the first slice of the (sliced) finiteness check, in the second clip
LATE_NAN = torch.zeros(2, (1 << 20) + 5000)
LATE_NAN[1, -10] = float("nan")
BAD_AUDIO["NaN late in a long clip"] = LATE_NAN


@pytest.mark.parametrize("word", sorted(BAD_AUDIO))
def test_bad_audio_is_refused(plugin, word):
    hear, model = plugin
    for fn in (hear.get_timestamp_embeddings, hear.get_scene_embeddings):
        with pytest.raises(ValueError, match=word.split()[0]):
            fn(BAD_AUDIO[word], model)


def test_foreign_model_and_options_are_refused(plugin):
    hear, _ = plugin
    with pytest.raises(ValueError, match="load_model"):
        hear.get_scene_embeddings(torch.zeros(1, 16000), torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="unknown .* option"):
        hear.load_model(no_such_option=1)
