"""What text stands for an item when it is embedded."""

from __future__ import annotations

from collections.abc import Sequence


def item_document(title: str, text: str | None = None, tags: Sequence[str] = ()) -> str:
    """`Title. Text. tag1, tag2`: title first (tokens past max_length are cut), tags last; a part
    that ends a sentence itself is followed by a space only."""
    parts = [title.strip()]
    if text and text.strip():
        parts.append(text.strip())
    if tags:
        parts.append(", ".join(t.strip() for t in tags if t.strip()))
    kept = [p for p in parts if p]
    return "".join(p + ("" if n == len(kept) - 1 else " " if p[-1] in ".!?" else ". ")
                   for n, p in enumerate(kept))
