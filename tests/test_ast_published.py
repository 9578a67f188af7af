"""The published ASTs (Gong et al.'s files, Hugging Face's ASTForAudioClassification) through
hear_suite.ast, against an independent oracle: transformers' ASTFeatureExtractor and
ASTForAudioClassification, built offline with random weights and saved in both layouts (the
original layout by the published key mapping, written here, not hear_suite's)."""
import re
import subprocess

import numpy as np
import pytest
import torch

import hear_suite.ast as hast
from hear_suite import cli, frontends
from hear_suite.ast import original
from hear_suite.ast.imagenet import from_timm
from hear_suite.ast.model import AST, ASTConfig

transformers = pytest.importorskip(
    "transformers", reason="the oracle: pip install transformers (the 'test' extra)")
pytest.importorskip("safetensors", reason="Hugging Face weights: pip install safetensors")

ONE_WINDOW = 164_080  # 1,024 Kaldi frames at 16 kHz: (1024 - 1) * 160 + 400 samples
LENGTHS = {"1s": 16_000, "10.24s": ONE_WINDOW, "25s": 400_000}


def audio(n_samples, seed=0):
    rng = np.random.default_rng(seed)  # noise with an offset, a tone and a silent stretch
    x = 0.3 * rng.uniform(-1, 1, n_samples) + 0.05
    x += 0.2 * np.sin(2 * np.pi * 440 * np.arange(n_samples) / 16000)
    x[n_samples // 3: n_samples // 3 + 4000] = 0.0
    return x.astype(np.float32)


def hf_to_original(sd):
    """The published mapping from Hugging Face's keys back to the AST repository's (the
    reverse of transformers' convert_audio_spectrogram_transformer_original_to_pytorch.py)."""
    out = {}
    for key, value in sd.items():
        k = key.replace("audio_spectrogram_transformer.", "")
        if k.startswith("classifier."):
            k = k.replace("classifier.layernorm", "module.mlp_head.0")
            out[k.replace("classifier.dense", "module.mlp_head.1")] = value
            continue
        k = (k.replace("embeddings.cls_token", "v.cls_token")
              .replace("embeddings.distillation_token", "v.dist_token")
              .replace("embeddings.position_embeddings", "v.pos_embed")
              .replace("embeddings.patch_embeddings.projection", "v.patch_embed.proj")
              .replace("encoder.layer.", "v.blocks.")
              .replace("attention.output.dense", "attn.proj")
              .replace("intermediate.dense", "mlp.fc1").replace("output.dense", "mlp.fc2")
              .replace("layernorm_before", "norm1").replace("layernorm_after", "norm2")
              .replace("layernorm", "v.norm"))
        m = re.match(r"v\.blocks\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)", k)
        if m:
            continue  # concatenated below
        out["module." + k] = value
    depth = 1 + max(int(k.split(".")[3]) for k in out if k.startswith("module.v.blocks."))
    for i in range(depth):
        for p in ("weight", "bias"):
            out[f"module.v.blocks.{i}.attn.qkv.{p}"] = torch.cat([
                sd[f"audio_spectrogram_transformer.encoder.layer.{i}.attention.attention.{n}.{p}"]
                for n in ("query", "key", "value")])
    dim = out["module.v.cls_token"].shape[-1]
    for p, shape in (("weight", (1000, dim)), ("bias", (1000,))):  # DeiT's unused heads
        out[f"module.v.head.{p}"] = torch.zeros(shape)
        out[f"module.v.head_dist.{p}"] = torch.zeros(shape)
    return out


def make_oracle(folder, *, labels=527, frames=1024, full_size=False, eps=1e-12, mean=None,
                std=None, seed=0):
    """A random ASTForAudioClassification (perturbed so that every norm and bias matters) and
    its feature extractor, saved in ``folder/hf``, and the original layout in
    ``folder/<recipe>_10_10_test.pth``."""
    from transformers import ASTConfig as HFConfig
    from transformers import ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(seed)
    sizes = {} if full_size else dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=1,
                                      intermediate_size=128)
    config = HFConfig(**sizes, max_length=frames, num_labels=labels, layer_norm_eps=eps)
    model = ASTForAudioClassification(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(folder / "hf")
    extra = {} if mean is None else dict(mean=mean, std=std)
    extractor = ASTFeatureExtractor(max_length=frames, **extra)
    extractor.save_pretrained(folder / "hf")
    recipe = original.RECIPES[labels][0]
    pth = folder / f"{recipe}_10_10_test.pth"
    from safetensors.torch import load_file

    # the file save_pretrained writes has the Hub's key names (transformers 5 renames its
    # modules in memory, not on disk)
    torch.save(hf_to_original(load_file(str(folder / "hf" / "model.safetensors"))), pth)
    return model, extractor, pth


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """AudioSet layout (1,024 frames, 527 classes), small width, HF eps 1e-12."""
    return make_oracle(tmp_path_factory.mktemp("audioset"))


@pytest.fixture(scope="module")
def oracle_timm_eps(tmp_path_factory):
    """The same with timm's LayerNorm eps 1e-6, for the original layout (whose head norm keeps
    torch's 1e-5)."""
    return make_oracle(tmp_path_factory.mktemp("audioset_eps"), eps=1e-6)


def reference(model, extractor, x):
    with torch.no_grad():
        inputs = extractor(x, sampling_rate=16000, return_tensors="pt")
        out = model(**inputs)
        pooled = model.audio_spectrogram_transformer(**inputs).pooler_output
    return inputs["input_values"][0], out.logits[0], pooled[0]


def first_window(embedder, x):
    """hear_suite's first window: normalised fbank (frames, mels), logits and CLS average."""
    mel = embedder.window_features(torch.from_numpy(x)[None], 0, 1)[:, 0]
    with torch.no_grad():
        tokens = embedder.encoder.forward_features(mel)
        return mel[0].T, embedder.encoder.forward_head(tokens)[0], tokens[0, :2].mean(0)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_kaldi_fbank_equals_transformers():
    """The raw log fbank (no padding, no normalisation) and the extractor's padded, normalised
    input, for 1 s, 10.24 s and 25 s."""
    from transformers import ASTFeatureExtractor

    fbank = frontends.kaldi_fbank()
    for n in LENGTHS.values():
        x = audio(n)
        frames = 1 + (n - 400) // 160
        raw = ASTFeatureExtractor(do_normalize=False, max_length=frames)(
            x, sampling_rate=16000, return_tensors="pt")["input_values"][0]
        ours = fbank(torch.from_numpy(x)[None])[0].T
        assert ours.shape == raw.shape == (frames, 128)
        assert (ours - raw).abs().max() <= 1e-3
    assert fbank(torch.zeros(2, 399)).shape == (2, 128, 0)  # shorter than a frame: none


@pytest.mark.parametrize("layout", ["huggingface", "original"])
@pytest.mark.parametrize("length", list(LENGTHS), ids=list(LENGTHS))
def test_logits_and_cls_average_equal_transformers(oracle, oracle_timm_eps, layout, length):
    model, extractor, pth = oracle if layout == "huggingface" else oracle_timm_eps
    embedder = hast.load_model(str(pth.parent / "hf") if layout == "huggingface" else str(pth))
    assert embedder.config.frontend == "kaldi_fbank" and embedder.config.window_frames == 1024
    x = audio(LENGTHS[length])
    want_input, want_logits, want_pooled = reference(model, extractor, x)
    got_input, got_logits, got_pooled = first_window(embedder, x)  # 25 s: transformers cuts
    assert (got_input - want_input).abs().max() <= 1e-3
    assert rel(got_logits, want_logits) <= 1e-4
    assert rel(got_pooled, want_pooled) <= 1e-4


@pytest.mark.parametrize("layout", ["huggingface", "original"])
def test_scene_embedding_of_one_window_is_pooler_output(oracle, oracle_timm_eps, layout):
    model, extractor, pth = oracle if layout == "huggingface" else oracle_timm_eps
    embedder = hast.load_model(str(pth.parent / "hf") if layout == "huggingface" else str(pth))
    x = np.stack([audio(ONE_WINDOW, seed=1), audio(ONE_WINDOW, seed=2)])
    scene = hast.get_scene_embeddings(torch.from_numpy(x), embedder)
    for i in range(2):
        assert rel(scene[i], reference(model, extractor, x[i])[2]) <= 1e-4
    emb, ts = hast.get_timestamp_embeddings(torch.from_numpy(x), embedder)
    assert emb.shape == (2, 101, 64)  # 101 patch columns of whole frames: one window
    assert torch.allclose(ts[0], 87.5 + 100.0 * torch.arange(101))


def test_full_size_once(tmp_path):
    """ViT-Base (768 wide, 12 blocks, 527 classes) as the published AudioSet model, one clip."""
    model, extractor, pth = make_oracle(tmp_path, full_size=True)
    x = audio(ONE_WINDOW, seed=3)
    want = reference(model, extractor, x)
    for source in (tmp_path / "hf", pth):
        embedder = hast.load_model(str(source))
        assert embedder.config.dim == 768 and embedder.config.depth == 12
        got = first_window(embedder, x)
        assert (got[0] - want[0]).abs().max() <= 1e-3
        # the original layout keeps timm's 1e-6 and torch's 1e-5 LayerNorm eps (HF: 1e-12)
        assert rel(got[1], want[1]) <= 1e-4 and rel(got[2], want[2]) <= 1e-4
        scene = hast.get_scene_embeddings(torch.from_numpy(x)[None], embedder)
        assert rel(scene[0], want[2]) <= 1e-4


def test_speech_commands_recipe(tmp_path):
    """128 frames, 35 classes, the recipe's statistics: known from the class count; a 1 s clip
    (98 frames) is one padded window, a 3 s clip three columns-contiguous windows."""
    model, extractor, pth = make_oracle(tmp_path, labels=35, frames=128, mean=-6.845978,
                                        std=5.5654526, eps=1e-6)
    for source in (tmp_path / "hf", pth):
        embedder = hast.load_model(str(source))
        c = embedder.config
        assert (c.window_frames, c.norm_mean, c.norm_std, c.num_classes) == (
            128, -6.845978, 5.5654526, 35)
        if source == pth:  # the recipe's class names (Hugging Face: config.json's id2label)
            assert c.labels[:3] == ("backward", "follow", "five")
        x = audio(16000, seed=4)
        want = reference(model, extractor, x)
        got = first_window(embedder, x)
        assert rel(got[1], want[1]) <= 1e-4
        assert rel(hast.get_scene_embeddings(torch.from_numpy(x)[None], embedder)[0],
                   want[2]) <= 1e-4
        emb, ts = hast.get_timestamp_embeddings(torch.from_numpy(audio(48000))[None], embedder)
        assert emb.shape[1] == (1 + (48000 - 400) // 160 - 16) // 10 + 1 and ts[0, -1] <= 3000


def test_hear_contract_on_long_and_short_clips(oracle):
    """Columns continue across windows at a 100 ms hop, a batch equals its items, a clip
    shorter than one frame still gets one column."""
    embedder = hast.load_model(str(oracle[2].parent / "hf"), max_windows=2)
    x = torch.from_numpy(np.stack([audio(400_000, seed=5), audio(400_000, seed=6)]))
    emb, ts = hast.get_timestamp_embeddings(x, embedder)
    assert emb.shape == (2, 249, 64) and ts[0, -1] <= 25_000
    assert torch.allclose(ts[0, 1:] - ts[0, :-1], torch.full((248,), 100.0))
    one, _ = hast.get_timestamp_embeddings(x[1:], embedder)
    assert torch.allclose(one[0], emb[1], atol=1e-5)
    tiny, ts = hast.get_timestamp_embeddings(torch.rand(1, 200) - 0.5, embedder)
    assert tiny.shape == (1, 1, 64) and bool(torch.isfinite(tiny).all())


def test_export_round_trips(oracle, tmp_path):
    _, _, pth = oracle
    hf_dir = pth.parent / "hf"
    for name in ("a.pt", "b.pth", "c"):
        assert not (tmp_path / name).exists()
    cli.main(["export", "ast-import", "--checkpoint", str(hf_dir), "--out", str(tmp_path / "a.pt")])
    cli.main(["export", "ast-original", "--checkpoint", str(tmp_path / "a.pt"),
              "--out", str(tmp_path / "audioset_10_10_b.pth")])
    cli.main(["export", "ast-hf", "--checkpoint", str(tmp_path / "audioset_10_10_b.pth"),
              "--out", str(tmp_path / "c")])
    from safetensors.torch import load_file

    before, after = load_file(str(hf_dir / "model.safetensors")), load_file(
        str(tmp_path / "c" / "model.safetensors"))
    assert sorted(before) == sorted(after)
    assert all(torch.equal(before[k], after[k]) for k in before)  # HF -> ... -> HF: bit-exact
    # original -> hear_suite -> original: every tensor, DeiT's unused heads written as zeros
    src = torch.load(pth, weights_only=True)
    cli.main(["export", "ast-original", "--checkpoint", str(pth), "--out", str(tmp_path / "d.pth")])
    back = torch.load(tmp_path / "d.pth", weights_only=True)
    assert sorted(src) == sorted(back) and all(torch.equal(src[k], back[k]) for k in src)
    # hear_suite -> original -> hear_suite: bit-exact, config included (eps aside: the original
    # layout has timm's and torch's own)
    a = hast.load_model(str(tmp_path / "a.pt")).encoder
    b = hast.load_model(str(tmp_path / "audioset_10_10_b.pth")).encoder
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    # transformers reads the exported directory and gives the same logits
    from transformers import ASTForAudioClassification

    cli.main(["export", "ast-hf", "--checkpoint", str(tmp_path / "a.pt"), "--out",
              str(tmp_path / "e")])
    again = ASTForAudioClassification.from_pretrained(tmp_path / "e").eval()
    x = audio(32000, seed=7)
    assert rel(reference(again, oracle[1], x)[1], reference(oracle[0], oracle[1], x)[1]) < 1e-6


def test_shipped_weights_do_not_fit_the_published_layouts(tmp_path):
    with pytest.raises(ValueError, match="does not fit the original ASTModel"):
        cli.main(["export", "ast-original", "--out", str(tmp_path / "x.pth")])
    with pytest.raises(ValueError, match="does not fit ASTForAudioClassification"):
        cli.main(["export", "ast-hf", "--out", str(tmp_path / "x")])


def test_bad_and_foreign_files(oracle, tmp_path):
    _, _, pth = oracle
    hf_dir = pth.parent / "hf"
    sd = torch.load(pth, weights_only=True)
    cases = {}
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    cases["foreign.pt"] = (ValueError, "not an AST checkpoint: expected a hear_suite 'ast' "
                                       "checkpoint, an original AST checkpoint")
    extra = dict(sd, **{"module.v.extra": torch.zeros(1)})
    torch.save(extra, tmp_path / "audioset_10_10_extra.pth")
    cases["audioset_10_10_extra.pth"] = (ValueError, r"unexpected \['v.extra'\]")
    missing = {k: v for k, v in sd.items() if "blocks.1.norm2" not in k}
    torch.save(missing, tmp_path / "audioset_10_10_missing.pth")
    cases["audioset_10_10_missing.pth"] = (ValueError, "missing .*v.blocks.1.norm2.weight")
    other = dict(sd, **{"module.mlp_head.1.weight": torch.zeros(11, 64),
                        "module.mlp_head.1.bias": torch.zeros(11)})
    torch.save(other, tmp_path / "custom.pth")
    cases["custom.pth"] = (ValueError, "11 classes: not one of the published recipes")
    (tmp_path / "trunc").mkdir()
    for f in ("config.json", "preprocessor_config.json"):
        (tmp_path / "trunc" / f).write_bytes((hf_dir / f).read_bytes())
    (tmp_path / "trunc" / "model.safetensors").write_bytes(
        (hf_dir / "model.safetensors").read_bytes()[:5000])
    cases["trunc"] = (RuntimeError, "truncated or corrupt")
    (tmp_path / "noconfig").mkdir()
    (tmp_path / "noconfig" / "model.safetensors").write_bytes(
        (hf_dir / "model.safetensors").read_bytes())
    cases["noconfig"] = (FileNotFoundError, "need the config.json")
    (tmp_path / "empty").mkdir()
    cases["empty"] = (FileNotFoundError, "has no model.safetensors or pytorch_model.bin")
    for name, (error, message) in cases.items():
        with pytest.raises(error, match=message):
            hast.load_model(str(tmp_path / name))
    with pytest.raises(ValueError, match="holds a 'kwmlp' model, not a 'ast' model"):
        hast.load_model("kwmlp_real.pt")
    # a fine-tune on another label set loads once its recipe is given
    cli.main(["export", "ast-import", "--checkpoint", str(tmp_path / "custom.pth"), "--out",
              str(tmp_path / "custom.pt"), "--frames", "1024", "--norm-mean", "-5",
              "--norm-std", "4"])
    assert hast.load_model(str(tmp_path / "custom.pt")).config.norm_mean == -5.0


def test_strides_from_table_size_and_name():
    assert original.infer_strides(12 * 101, 1024) == (10, 10)
    assert original.infer_strides(8 * 64, 1024, "audioset_16_16_0.4422.pth") == (16, 16)
    assert original.infer_strides(10 * 85, 1024, "renamed.pth") == (12, 12)
    with pytest.raises(ValueError, match="cannot tell the patch strides"):
        original.infer_strides(7, 1024)


# timm 1.0's deit_base_distilled_patch16_384 state dict (timm.create_model(...,
# pretrained=False).state_dict(): 155 tensors), written down because timm needs torchvision,
# which cannot be installed beside torch 2.13 (see the README)
DEIT_TOP = {"cls_token": (1, 1, 768), "pos_embed": (1, 578, 768), "dist_token": (1, 1, 768),
            "patch_embed.proj.weight": (768, 3, 16, 16), "patch_embed.proj.bias": (768,),
            "norm.weight": (768,), "norm.bias": (768,), "head.weight": (1000, 768),
            "head.bias": (1000,), "head_dist.weight": (1000, 768), "head_dist.bias": (1000,)}
DEIT_BLOCK = {"norm1.weight": (768,), "norm1.bias": (768,), "attn.qkv.weight": (2304, 768),
              "attn.qkv.bias": (2304,), "attn.proj.weight": (768, 768),
              "attn.proj.bias": (768,), "norm2.weight": (768,), "norm2.bias": (768,),
              "mlp.fc1.weight": (3072, 768), "mlp.fc1.bias": (3072,),
              "mlp.fc2.weight": (768, 3072), "mlp.fc2.bias": (768,)}


def test_imagenet_init_from_the_real_deit_layout():
    g = torch.Generator().manual_seed(0)
    shapes = dict(DEIT_TOP, **{f"blocks.{i}.{k}": s for i in range(12)
                               for k, s in DEIT_BLOCK.items()})
    assert len(shapes) == 155
    sd = {k: torch.randn(s, generator=g) * 0.02 for k, s in shapes.items()}
    model = AST(ASTConfig.preset("ast", labels=tuple(f"c{i}" for i in range(527))))
    model.load_state_dict(from_timm(sd, model), strict=True)
    assert torch.equal(model.blocks[11].mlp.fc2.weight, sd["blocks.11.mlp.fc2.weight"])
    assert model.pos_embed.weight.shape == (1, 2 + 12 * 101, 768)
    with pytest.raises(ValueError, match="unexpected timm keys"):
        from_timm(dict(sd, **{"blocks.0.ls1.gamma": torch.ones(768)}), model)


def test_validator_on_a_hugging_face_directory(oracle):
    from test_package import validator

    result = subprocess.run([validator(), "hear_suite.ast", "-m", str(oracle[2].parent / "hf")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Looks good!" in result.stdout


def test_streamed_like_the_whole_clip(oracle):
    """``hear-suite embed``'s path for long files: the Kaldi framing block by block."""
    from hear_suite.streaming import ClipSource

    embedder = hast.load_model(str(oracle[2].parent / "hf"), max_windows=2)
    x = torch.from_numpy(audio(400_000, seed=8))[None]
    want_emb, want_ts = hast.get_timestamp_embeddings(x, embedder)
    emb, ts = [], []
    scene = embedder.stream(ClipSource.of_tensor(x), on_timestamps=lambda e, t: (emb.append(e),
                                                                                  ts.append(t)))
    assert torch.allclose(torch.cat(emb), want_emb[0], atol=1e-5)
    assert torch.equal(torch.cat(ts), want_ts[0])
    assert rel(scene, hast.get_scene_embeddings(x, embedder)[0]) <= 1e-5


def test_published_models_keep_their_100_ms_timestamps(oracle):
    """Finer timestamps are an option of hear_suite's log-mel ASTs only: a published AST already
    has a column every 100 ms, so ``timestamp_hop_ms`` is refused with the reason and its
    ``2level+mel`` keeps the 100 ms grid."""
    path = str(oracle[2].parent / "hf")
    with pytest.raises(ValueError, match="an option of hear_suite's log-mel ASTs; a published "
                                         "AST has a timestamp every 100 ms"):
        hast.load_model(path, timestamp_hop_ms=50)
    assert hast.load_model(path, embedding="2level+mel").hop_ms == 100.0
