"""What text stands for an item when it is embedded."""

from __future__ import annotations

from collections.abc import Sequence


def item_document(title: str, text: str | None = None, tags: Sequence[str] = ()) -> str:
    """`Title. Text. tag1, tag2`: title first (tokens past max_length are cut), tags last."""
    parts = [title.strip()]
    if text and text.strip():
        parts.append(text.strip())
    if tags:
        parts.append(", ".join(t.strip() for t in tags if t.strip()))
    return ". ".join(p for p in parts if p)
