"""A Hugging Face transformer encoder: mean pooling over the attention mask, then L2 norm.

Matches sentence-transformers' all-MiniLM-L6-v2 output (Reimers & Gurevych 2019) to ~1e-8.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from encoders.model_folder import folder_version, resolve_model_folder


class TransformerEncoder:
    def __init__(
        self,
        model: str = "",
        *,
        batch_size: int = 32,
        max_length: int = 128,
        threads: int = 0,  # torch intra-op threads; 0 keeps torch's default
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        hf_logging.disable_progress_bar()
        if threads > 0:
            torch.set_num_threads(threads)
        self.folder: Path = resolve_model_folder(model)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.folder), local_files_only=True).eval()
        self.dim: int = int(self.model.config.hidden_size)
        self.version: str = folder_version(self.folder)
        self.batch_size = batch_size
        self.max_length = max_length

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(N,) texts -> (N, D) float32 unit rows, batched in order of length to cut padding."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)  # (N, D)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._encode_batch([texts[i] for i in rows])
        return out

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        hidden = self.model(**batch).last_hidden_state  # (B, T, D)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        # mean over real tokens: sum_t m_t h_t / sum_t m_t
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (B, D)
        pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)  # (B, D) unit rows
        return pooled.cpu().numpy().astype(np.float32, copy=False)
