"""Hugging Face ``ASTForAudioClassification`` checkpoints
(``MIT/ast-finetuned-audioset-10-10-0.4593`` and its siblings) and conversion both ways.

A model is a directory: ``config.json`` (``model_type: audio-spectrogram-transformer``: sizes,
``patch_size``, ``frequency_stride``, ``time_stride``, ``max_length`` frames, ``num_mel_bins``,
``layer_norm_eps``, ``id2label``), ``model.safetensors`` or ``pytorch_model.bin``, and, when the
feature extractor was saved too, ``preprocessor_config.json`` (``mean``, ``std``,
``do_normalize``; without it ``ASTFeatureExtractor``'s defaults, AudioSet's statistics, apply).
Keys under ``audio_spectrogram_transformer.``: ``embeddings.{cls_token, distillation_token,
position_embeddings, patch_embeddings.projection}``, ``encoder.layer.N.{layernorm_before,
attention.attention.{query,key,value}, attention.output.dense, layernorm_after,
intermediate.dense, output.dense}``, ``layernorm``; then ``classifier.{layernorm,dense}``.
Separate query/key/value projections become one ``qkv`` (and are split back exactly).

safetensors files are read with the ``safetensors`` package (``pip install safetensors``), which
stores tensors only; ``pytorch_model.bin`` with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from hear_suite import checkpoint
from hear_suite.ast.model import ASTConfig
from hear_suite.ast.original import KALDI_FRONTEND, VIT, layout_mismatches
from hear_suite.tasks import write_atomic

MODEL_TYPE = "audio-spectrogram-transformer"
PREFIX = "audio_spectrogram_transformer."
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# ASTFeatureExtractor's defaults (AudioSet)
DEFAULT_MEAN, DEFAULT_STD = -4.2677393, 4.5689974

_BLOCK_RENAMES = (  # (ours inside blocks.i, theirs inside encoder.layer.i), qkv aside
    ("norm1", "layernorm_before"), ("attn.proj", "attention.output.dense"),
    ("norm2", "layernorm_after"), ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense"))
_QKV = ("query", "key", "value")


def _renames(depth: int) -> List[Tuple[str, str]]:
    """(hear_suite key, Hugging Face key) of every tensor but the query/key/value ones."""
    e = PREFIX + "embeddings."
    pairs = [("cls_token", e + "cls_token"), ("dist_token", e + "distillation_token"),
             ("pos_embed.weight", e + "position_embeddings")]
    pairs += [(f"{a}.{p}", f"{b}.{p}") for a, b in (
        ("patch_embed.proj", e + "patch_embeddings.projection"), ("norm", PREFIX + "layernorm"),
        ("head_norm", "classifier.layernorm"), ("head", "classifier.dense"))
        for p in ("weight", "bias")]
    pairs += [(f"blocks.{i}.{ours}.{p}", f"{PREFIX}encoder.layer.{i}.{theirs}.{p}")
              for i in range(depth) for ours, theirs in _BLOCK_RENAMES for p in ("weight", "bias")]
    return pairs


def _qkv_keys(i: int, part: str) -> List[str]:
    return [f"{PREFIX}encoder.layer.{i}.attention.attention.{n}.{part}" for n in _QKV]


def is_hf_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and PREFIX + "embeddings.position_embeddings" in obj


def from_hf(sd: Dict[str, Tensor], config: Dict[str, Any],
            preprocessor: Optional[Dict[str, Any]] = None) -> Tuple[ASTConfig, Dict[str, Tensor]]:
    """Hugging Face state dict, ``config.json`` and ``preprocessor_config.json`` (or None) ->
    (config, hear_suite state dict). Every key is used or named in the error."""
    if config.get("model_type") != MODEL_TYPE:
        raise ValueError(f"config.json has model_type {config.get('model_type')!r}, expected "
                         f"{MODEL_TYPE!r}")
    if config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"hidden_act {config['hidden_act']!r}: only gelu is supported")
    pre = preprocessor or {}
    if pre.get("sampling_rate", 16000) != 16000 or pre.get("num_mel_bins", config.get(
            "num_mel_bins", 128)) != config.get("num_mel_bins", 128):
        raise ValueError(f"preprocessor_config.json does not match the model: {pre}")
    normalize = pre.get("do_normalize", True)
    depth = config.get("num_hidden_layers", 12)
    patch = config.get("patch_size", 16)
    id2label = config.get("id2label") or {}
    n_classes = sd["classifier.dense.weight"].shape[0] if "classifier.dense.weight" in sd else 0
    labels = (tuple(id2label[k] for k in sorted(id2label, key=int)) if len(id2label) == n_classes
              else tuple(f"class{i}" for i in range(n_classes)))
    ours = ASTConfig(
        **{**KALDI_FRONTEND, "n_mels": config.get("num_mel_bins", 128)},
        **{**VIT, "patch_freq": patch, "patch_time": patch,
           "qkv_bias": config.get("qkv_bias", True)},
        window_frames=config.get("max_length", 1024),
        stride_freq=config.get("frequency_stride", 10), stride_time=config.get("time_stride", 10),
        dim=config.get("hidden_size", 768), depth=depth,
        heads=config.get("num_attention_heads", 12), ff_dim=config.get("intermediate_size", 3072),
        norm_eps=config.get("layer_norm_eps", 1e-12),
        # do_normalize False: the extractor's output is the fbank itself, (x - 0) / (2 * 0.5)
        norm_mean=pre.get("mean", DEFAULT_MEAN) if normalize else 0.0,
        norm_std=pre.get("std", DEFAULT_STD) if normalize else 0.5,
        labels=labels or ("class0",))
    renames = _renames(depth)
    qkv = [_qkv_keys(i, p) for i in range(depth) for p in ("weight", "bias")
           if ours.qkv_bias or p == "weight"]
    expected = {theirs for _, theirs in renames} | {k for keys in qkv for k in keys}
    missing = sorted(expected - set(sd))
    unexpected = sorted(set(sd) - expected)
    if missing or unexpected:
        raise ValueError(f"Hugging Face AST state dict does not fit ASTForAudioClassification of "
                         f"its config.json: missing {missing[:4]}, unexpected {unexpected[:4]}")
    out = {mine: sd[theirs] for mine, theirs in renames}
    for i in range(depth):
        for p in ("weight", "bias") if ours.qkv_bias else ("weight",):
            out[f"blocks.{i}.attn.qkv.{p}"] = torch.cat([sd[k] for k in _qkv_keys(i, p)])
    return ours, out


def to_hf(state_dict: Dict[str, Tensor], config: ASTConfig
          ) -> Tuple[Dict[str, Tensor], Dict[str, Any], Dict[str, Any]]:
    """hear_suite state dict -> (Hugging Face state dict, ``config.json``,
    ``preprocessor_config.json``). ``config.json`` has one ``layer_norm_eps``: an original
    model's head norm (torch's 1e-5) gets its blocks' 1e-6 (Hugging Face's own conversion of
    the published files used 1e-12 for all; either moves the outputs by about 1e-6)."""
    wrong = layout_mismatches(config, free=("n_mels", "qkv_bias"))
    if config.patch_freq != config.patch_time:
        wrong["patch"] = (config.patch_freq, config.patch_time)
    if wrong:
        raise ValueError(f"this AST does not fit ASTForAudioClassification: {wrong}")
    sd = {theirs: state_dict[mine].detach().cpu().contiguous()
          for mine, theirs in _renames(config.depth)}
    for i in range(config.depth):
        for p in ("weight", "bias") if config.qkv_bias else ("weight",):
            parts = state_dict[f"blocks.{i}.attn.qkv.{p}"].detach().cpu().chunk(3)
            sd.update({k: t.contiguous() for k, t in zip(_qkv_keys(i, p), parts)})
    hf_config = {
        "architectures": ["ASTForAudioClassification"], "model_type": MODEL_TYPE,
        "hidden_size": config.dim, "num_hidden_layers": config.depth,
        "num_attention_heads": config.heads, "intermediate_size": config.ff_dim,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02, "layer_norm_eps": config.norm_eps,
        "patch_size": config.patch_freq, "qkv_bias": config.qkv_bias,
        "frequency_stride": config.stride_freq, "time_stride": config.stride_time,
        "max_length": config.window_frames, "num_mel_bins": config.n_mels,
        "id2label": {str(i): label for i, label in enumerate(config.labels)},
        "label2id": {label: i for i, label in enumerate(config.labels)},
        "torch_dtype": "float32"}
    preprocessor = {
        "feature_extractor_type": "ASTFeatureExtractor", "feature_size": 1,
        "sampling_rate": config.sample_rate, "num_mel_bins": config.n_mels,
        "max_length": config.window_frames, "do_normalize": True, "mean": config.norm_mean,
        "std": config.norm_std, "padding_value": 0.0, "return_attention_mask": False}
    return sd, hf_config, preprocessor


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError("reading or writing a Hugging Face model.safetensors needs the "
                          "safetensors package: pip install safetensors") from None
    return safetensors.torch


def is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header size, then a JSON header."""
    with open(path, "rb") as f:
        head = f.read(10)
    return len(head) == 10 and head[8:9] == b"{"


def read(path: Path, state_dict: Optional[Dict[str, Tensor]] = None
         ) -> Tuple[Dict[str, Tensor], Dict[str, Any], Optional[Dict[str, Any]]]:
    """(state dict, config.json, preprocessor_config.json or None) of a model directory, or of
    a weights file with ``config.json`` beside it (``state_dict``: that file, already read)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    weights = path
    if path.is_dir():
        weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
        if weights is None:
            raise FileNotFoundError(f"{folder} has no {' or '.join(WEIGHT_FILES)}")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"Hugging Face AST weights {weights} need the config.json saved "
                                f"beside them ({folder / 'config.json'} is missing)")
    config = json.loads((folder / "config.json").read_text())
    pre_file = folder / "preprocessor_config.json"
    preprocessor = json.loads(pre_file.read_text()) if pre_file.is_file() else None
    if state_dict is not None:
        sd = state_dict
    elif is_safetensors(weights):
        loader = _safetensors()
        try:
            sd = loader.load_file(str(weights))
        except Exception as e:
            raise RuntimeError(f"{weights} is truncated or corrupt ({e})") from e
    else:
        sd = checkpoint.load_file(weights)
    if not is_hf_state_dict(sd):
        raise ValueError(f"{weights} is not an ASTForAudioClassification state dict (no "
                         f"'{PREFIX}embeddings.position_embeddings')")
    return sd, config, preprocessor


def write(folder: Path, sd: Dict[str, Tensor], config: Dict[str, Any],
          preprocessor: Dict[str, Any]) -> None:
    """``folder/{model.safetensors, config.json, preprocessor_config.json}``, each written
    atomically (``ASTForAudioClassification.from_pretrained(folder)`` reads it)."""
    folder = Path(folder)
    write_atomic(folder / "model.safetensors", _safetensors().save(sd, metadata={"format": "pt"}))
    for name, content in (("config.json", config), ("preprocessor_config.json", preprocessor)):
        write_atomic(folder / name, json.dumps(content, indent=2) + "\n")
