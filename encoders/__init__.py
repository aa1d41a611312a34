"""Text to vectors: one verb, `encode(texts) -> (N, D) float32`, L2-normalised."""

from encoders.base import Encoder
from encoders.documents import item_document

__all__ = ["Encoder", "item_document"]
