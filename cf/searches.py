"""A user's recent free-text searches, kept as positions of their item sequence.

The sequential model (`cf.sequence`) reads a user's latest items, each as e_i = E_id[i] + P v_i.
A search names no item, but its text has a vector in the same space: it enters the sequence
where it happened as P v_text, the input an item the model never saw gets from its text (the
model is trained with ID dropout so that text alone places an item). So a search moves the
sequence representation the next list is ranked by, as the text interest it also joins does.

The state keeps each search with `after`, the items the user consumed since it. The history is
oldest first, so a search sits before the last `after` of its H items, at place H - after (0
once the history's oldest items are gone). An item consumed again moves to the history's end and
counts as one more item after every search: its earlier consumption is no longer in the history.
"""

from __future__ import annotations

from collections.abc import Sequence

from cf.state import FloatVec, Search, stored_precision

SEARCH_HORIZON = 50  # items after which a search is dropped: the sequential model's window L


def remember(searches: tuple[Search, ...], item_id: str | None, vector: FloatVec | None,
             size: int, horizon: int = SEARCH_HORIZON) -> tuple[Search, ...]:
    """A user's searches after one of their events: an item's event puts one more item after
    each, and a search with `horizon` items after it goes (past the sequential model's window it
    is never read); a text event with no item (a search; `vector` (D,) its
    text's) joins them at stored precision, the oldest dropped past `size`; an event with
    neither changes nothing."""
    if item_id is not None:
        if not searches:
            return searches
        return tuple(Search(s.vector, s.after + 1) for s in searches if s.after + 1 < horizon)
    if vector is None or size <= 0:
        return searches
    return (*searches, Search(stored_precision(vector), 0))[-size:]


def afters(searches: Sequence[tuple[Search, ...]]) -> list[list[int]] | None:
    """Per user, each search's items consumed since (`SequenceModel.window`); None when no
    user of the batch has a search."""
    if not any(searches):
        return None
    return [[s.after for s in mine] for mine in searches]
