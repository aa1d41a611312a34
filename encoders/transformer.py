"""A Hugging Face transformer encoder: mean pooling over the attention mask, then L2 norm.

Matches sentence-transformers' all-MiniLM-L6-v2 output (Reimers & Gurevych 2019) to ~1e-8.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModel

from encoders.batching import encode_sorted
from encoders.model_folder import folder_version, load_tokenizer, resolve_model_folder
from encoders.pooling import mean_pool


class TransformerEncoder:
    def __init__(
        self,
        model: str = "",
        *,
        batch_size: int = 32,
        max_length: int = 128,
        threads: int = 0,  # torch intra-op threads; 0 keeps torch's default
    ) -> None:
        if threads > 0:
            torch.set_num_threads(threads)
        self.folder: Path = resolve_model_folder(model)
        self.tokenizer = load_tokenizer(self.folder)
        self.model = AutoModel.from_pretrained(str(self.folder), local_files_only=True).eval()
        self.backend = "torch-fp32"
        self.dim: int = int(self.model.config.hidden_size)
        self.version: str = folder_version(self.folder)
        self.batch_size = batch_size
        self.max_length = max_length

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(N,) texts -> (N, D) float32 unit rows, batched in order of length to cut padding."""
        return encode_sorted(texts, self.batch_size, self.dim, self._encode_batch)

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        hidden = self.model(**batch).last_hidden_state  # (B, T, D)
        pooled = mean_pool(hidden, batch["attention_mask"])  # (B, D) unit rows
        return pooled.cpu().numpy().astype(np.float32, copy=False)
