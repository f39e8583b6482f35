"""Task conditioning: a learned task-id embedding and/or a frozen sentence embedding of each task's instruction.

The sentence encoder is diffpilot.text_embedding's all-MiniLM-L6-v2 (384-d, loaded offline). The embeddings are
stored in the policy's weights as a buffer, so neither training nor a loaded checkpoint ever re-encodes (a checkpoint
does not even need the package).
"""

from __future__ import annotations

import torch
from torch import nn

from diffpilot.text_embedding import TEXT_DIM, encode_instructions

TASK_CONDITIONINGS = ("none", "id", "text", "id+text")


class TaskConditioner(nn.Module):
    """task index (B,) → task feature (B, out_dim): a learned id embedding, a projection of the frozen instruction
    embedding, or both concatenated.

    The instruction embeddings (N, 384) are a persistent buffer saved with the weights, with a flag saying they
    are filled: the first forward of a new model encodes the instructions (from the disk cache when present); a
    loaded checkpoint already holds them and never encodes."""

    def __init__(self, mode: str, instructions: list[str], embed_dim: int):
        super().__init__()
        if mode not in TASK_CONDITIONINGS or mode == "none":
            raise ValueError(f"task_conditioning.mode={mode!r}: expected one of {TASK_CONDITIONINGS[1:]}")
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
            raise ValueError(f"task_conditioning.mode={self.mode!r} uses no instruction embeddings")
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
