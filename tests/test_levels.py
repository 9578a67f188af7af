"""The ``embedding`` variants of every learned model (``final`` | ``2level`` | ``2level+mel``),
the modules named after them and bag-of-codes' histogram scaling: each variant begins with the
one before it (``final`` unchanged), the middle level is the encoder's own output at that depth,
the mel part is the floor's (frames at the model's timestamps, mean and std for scenes), and bad
options are refused by name. The HEAR contract of the ``*_2levelmel`` modules (sizes, batch ==
items, bad audio) is checked with every other module's in test_hear_contract.py."""
import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hear_suite import ast as hast
from hear_suite import bagofcodes as boc
from hear_suite import kwmlp, logmel
from hear_suite.bagofcodes.model import VIEWS, view_vectors
from hear_suite.hear_api import MEL_SCALE

FAMILIES = {"kwmlp": kwmlp, "ast": hast, "bagofcodes": boc}


def noise(n, length, seed=0):
    return torch.rand(n, length, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# 2level+mel changes three defaults (kwmlp's scene pooling, bag-of-codes' histogram scaling,
# the AST's timestamp hop); fixed here so that the three variants differ only in their parts
SAME_DEFAULTS = {"kwmlp": {"scene_pooling": "iterative_interpolation"},
                 "bagofcodes": {"histogram_scaling": "counts"},
                 "ast": {"timestamp_hop_ms": 320}}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    hear = FAMILIES[request.param]
    options = SAME_DEFAULTS.get(request.param, {})
    return request.param, hear, {e: hear.load_model(embedding=e, **options)
                                 for e in ("final", "2level", "2level+mel")}


def test_each_variant_begins_with_the_one_before(family):
    _, hear, models = family
    audio = noise(2, 16000 * 3 + 777)
    out = {e: (hear.get_timestamp_embeddings(audio, m), hear.get_scene_embeddings(audio, m))
           for e, m in models.items()}
    for e, m in models.items():
        (emb, ts), scene = out[e]
        assert emb.shape[-1] == m.timestamp_embedding_size
        assert scene.shape == (2, m.scene_embedding_size)
        assert torch.equal(ts, out["final"][0][1])          # the same timestamps, same hop
    for short, long in (("final", "2level"), ("2level", "2level+mel")):
        (emb, _), scene = out[short]
        (emb_l, _), scene_l = out[long]
        assert emb_l.shape[-1] > emb.shape[-1] and scene_l.shape[-1] > scene.shape[-1]
        assert torch.equal(emb_l[..., :emb.shape[-1]], emb)
        assert torch.equal(scene_l[:, :scene.shape[-1]], scene)
    # the floor's part: its scene exactly, and frames at the model's timestamps
    floor = logmel.load_model()
    (emb, ts), scene = out["2level+mel"]
    assert torch.allclose(scene[:, -256:], MEL_SCALE * logmel.get_scene_embeddings(audio, floor),
                          atol=1e-6)
    frames, _ = logmel.get_timestamp_embeddings(audio, floor)
    hop = float(ts[0, 1] - ts[0, 0])
    span = max(1, round(hop / 10))
    for j in (0, ts.shape[1] // 2, ts.shape[1] - 1):
        centre = float(ts[0, j]) / 10                        # in floor frames (10 ms apart)
        first = int(np.floor(centre - (span - 1) / 2 + 0.5))
        idx = np.clip(np.arange(first, first + span), 0, frames.shape[1] - 1)
        assert torch.allclose(emb[:, j, -128:], MEL_SCALE * frames[:, idx].mean(1),
                              atol=1e-5), j


def test_kwmlp_2level_mel_pools_every_part_as_the_floor():
    model = kwmlp.load_model(embedding="2level+mel")
    assert model.scene_pooling == "mean_std" and model.scene_embedding_size == 2 * 128 + 256
    audio = noise(2, 37000, seed=7)
    frames = model.frame_embeddings(audio)                  # (n, t, 128): both levels
    scene = kwmlp.get_scene_embeddings(audio, model)
    mean, std = frames.double().mean(1), frames.double().std(1, unbiased=False)
    want = torch.stack([mean, std], dim=-1).flatten(1).float()     # feature-major
    assert torch.allclose(scene[:, :256], want, atol=1e-5)
    floor = logmel.get_scene_embeddings(audio, logmel.load_model())
    assert torch.allclose(scene[:, 256:], MEL_SCALE * floor, atol=1e-6)


def test_kwmlp_middle_level_is_the_encoder_at_that_depth():
    final = kwmlp.load_model()
    two = kwmlp.load_model(embedding="2level", middle_depth=3)
    tapped = kwmlp.load_model(tap_depth=3)       # the existing single-depth tap as the reference
    audio = noise(2, 20000, seed=3)
    emb, _ = kwmlp.get_timestamp_embeddings(audio, two)
    assert torch.allclose(emb[..., 64:], kwmlp.get_timestamp_embeddings(audio, tapped)[0],
                          atol=1e-5)
    scene = kwmlp.get_scene_embeddings(audio, two)
    assert torch.allclose(scene[:, 1024:], kwmlp.get_scene_embeddings(audio, tapped), atol=1e-5)
    assert torch.equal(scene[:, :1024], kwmlp.get_scene_embeddings(audio, final))


def test_ast_middle_level_is_the_encoder_at_that_depth():
    model = hast.load_model(embedding="2level", middle_depth=1, scene_embedding="patch_mean")
    enc, c = model.encoder, model.config
    audio = noise(1, c.window_frames * c.hop_length, seed=4)        # about one window
    mel = model.window_features(audio, 0, 1)[:, 0]
    # the reference: block 1 run by hand, then a LayerNorm without affine parameters
    x, grid = enc.patch_embed(mel)
    x = torch.cat([enc.cls_token.expand(1, -1, -1), x], dim=1)
    x = enc.embed_norm(x)
    x = enc.blocks[0](x, grid=grid, order=c.order, num_prefix=c.num_prefix, bias=None)
    x = enc.pegs[0](x, grid, c.order)
    x = F.layer_norm(x, x.shape[-1:], eps=c.norm_eps)
    from hear_suite.ast import pos_embed as pe
    cols = pe.tokens_to_grid(x[:, 1:], grid, c.order).mean(dim=2).transpose(1, 2)
    emb, _ = hast.get_timestamp_embeddings(audio, model)
    n = min(emb.shape[1], cols.shape[1])
    assert torch.allclose(emb[0, :n, c.dim:], cols[0, :n], atol=1e-4)


def test_bagofcodes_middle_level_is_the_mean_encoder_output():
    model = boc.load_model(embedding="2level", middle_depth=2, timestamp_hop_ms=50)
    bag = model.model
    audio = noise(1, 16000, seed=5)                 # one second: every window sees all of it
    x = model.frames(audio, 0, 100)
    want = []
    for v in VIEWS:
        step = 10 if v in ("pat", "env") else 100
        vec = view_vectors(x, bag.config, v, step)                     # (1, P, per, dim)
        hidden = bag.encode_levels(v, vec, 2)[1]
        want.append(hidden.reshape(-1, hidden.shape[-1]).mean(0))
    want = torch.cat(want)
    d = bag.config.embedding_size
    scene = boc.get_scene_embeddings(audio, model)[0]
    assert torch.allclose(scene[d:], want, atol=1e-5)
    emb, _ = boc.get_timestamp_embeddings(audio, model)
    assert torch.allclose(emb[0, :, d:], want.expand(emb.shape[1], -1), atol=1e-5)


@pytest.mark.parametrize("scaling", ["sqrt", "log1p"])
def test_bagofcodes_histogram_scaling(scaling):
    audio = noise(2, 30000, seed=6)
    plain = boc.load_model()
    scaled = boc.load_model(histogram_scaling=scaling, embedding="2level")
    fn = getattr(torch, scaling)
    d = plain.config.embedding_size
    emb, _ = boc.get_timestamp_embeddings(audio, plain)
    emb_s, _ = boc.get_timestamp_embeddings(audio, scaled)
    assert torch.allclose(emb_s[..., :d], fn(emb), atol=1e-6)
    scene = boc.get_scene_embeddings(audio, plain)
    assert torch.allclose(boc.get_scene_embeddings(audio, scaled)[:, :d], fn(scene), atol=1e-6)
    # the middle level is not a histogram: left as it is
    two = boc.load_model(embedding="2level")
    assert torch.equal(emb_s[..., d:], boc.get_timestamp_embeddings(audio, two)[0][..., d:])


def test_bagofcodes_2level_mel_compresses_the_counts():
    audio = noise(2, 30000, seed=8)
    model = boc.load_model(embedding="2level+mel")
    assert model.histogram_scaling == "log1p" and boc.load_model().histogram_scaling == "counts"
    d = model.config.embedding_size
    counts = boc.get_scene_embeddings(audio, boc.load_model())
    assert torch.allclose(boc.get_scene_embeddings(audio, model)[:, :d], torch.log1p(counts),
                          atol=1e-6)


def test_ast_2level_mel_has_a_timestamp_every_80_ms():
    """The AST's 2level+mel defaults to four passes (80 ms, the events task's measured choice);
    its first 512 values are 2level's at those timestamps, every fourth the 320 ms ones."""
    audio = noise(2, 16000 * 4 + 321, seed=9)
    mel = hast.load_model(embedding="2level+mel")
    emb, ts = hast.get_timestamp_embeddings(audio, mel)
    assert mel.hop_ms == 80.0 and ts.shape[1] == audio.shape[1] // 1280 + 1
    two = hast.load_model(embedding="2level", timestamp_hop_ms=80)
    assert torch.equal(emb[..., :512], hast.get_timestamp_embeddings(audio, two)[0])
    coarse, _ = hast.get_timestamp_embeddings(audio, hast.load_model(embedding="2level"))
    assert torch.equal(emb[:, ::4, :512], coarse)
    assert hast.load_model().hop_ms == 320.0                  # final: unchanged


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_named_variant_modules(name):
    module = importlib.import_module(f"hear_suite.{name}_2levelmel")
    model = module.load_model()
    assert model.embedding == "2level+mel"
    assert module.get_scene_embeddings is FAMILIES[name].get_scene_embeddings
    with pytest.raises(ValueError, match="this module's embedding is '2level\\+mel'"):
        module.load_model(embedding="final")


@pytest.mark.parametrize("name, options, match", [
    ("kwmlp", {"embedding": "3level"}, "embedding must be one of"),
    ("kwmlp", {"embedding": "2level", "middle_depth": 12}, r"middle_depth must be an int in 1\.\.11"),
    ("kwmlp", {"embedding": "2level", "tap_depth": 4, "middle_depth": 4}, r"in 1\.\.3"),
    ("ast", {"embedding": "2level", "middle_depth": 0}, r"middle_depth must be an int in 1\.\.3"),
    ("bagofcodes", {"embedding": "2level", "middle_depth": 4}, r"in 1\.\.3 \(the encoder layer"),
    ("bagofcodes", {"histogram_scaling": "tfidf"}, "histogram_scaling must be one of"),
    ("ast", {"embedding": "2level+mel", "timestamp_hop_ms": 30}, "must divide the column hop"),
])
def test_bad_options_are_refused(name, options, match):
    with pytest.raises(ValueError, match=match):
        FAMILIES[name].load_model(**options)


def test_probe_scaled_parts_derives_the_columns_asked(tmp_path):
    """scripts/probe_scaled_parts.py (results/real_suite.md's scaling lines): the derived split
    embeddings are the chosen columns, transformed then scaled, and the task files are kept."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "probe_scaled_parts.py"
    spec = importlib.util.spec_from_file_location("probe_scaled_parts", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    src = tmp_path / "src"
    src.mkdir()
    x = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    np.save(src / "unused.npy", x)                     # any other file is linked as it is
    out = np.memmap(src / "train.embeddings.npy", dtype=np.float32, mode="w+", shape=x.shape)
    out[:] = x
    out.flush()
    (src / "train.embedding-dimensions.json").write_text(json.dumps(list(x.shape)))
    script.derive(src, tmp_path / "dst", script.parse_parts("0:2*0.5,2:4!log1p*2,5:"))
    dims = json.loads((tmp_path / "dst" / "train.embedding-dimensions.json").read_text())
    got = np.memmap(tmp_path / "dst" / "train.embeddings.npy", dtype=np.float32, mode="r",
                    shape=tuple(dims))
    want = np.hstack([x[:, :2] * 0.5, np.log1p(x[:, 2:4]) * 2, x[:, 5:]])
    assert dims == [5, 5] and np.allclose(got, want, atol=1e-6)
    assert (tmp_path / "dst" / "unused.npy").exists()
    with pytest.raises(SystemExit, match="unknown transform"):
        script.parse_parts("0:2!exp")
