"""Sentence vectors from token states: mean over real tokens, then unit length (Reimers & Gurevych 2019)."""

from __future__ import annotations

import torch


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D) token states, (B, T) 0/1 mask -> (B, D) unit rows."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    # mean over real tokens: sum_t m_t h_t / sum_t m_t
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (B, D)
    return torch.nn.functional.normalize(pooled, p=2.0, dim=1)  # (B, D), ||row|| = 1


class SentenceModel(torch.nn.Module):
    """A Hugging Face encoder plus pooling: (input_ids, attention_mask) -> (B, D) unit rows."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, D)
        return mean_pool(hidden, attention_mask)
