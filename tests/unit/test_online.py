from __future__ import annotations

from cf.online import RecentItems, rank_of


def test_rank_of_is_one_based_and_none_for_a_miss() -> None:
    assert rank_of(("a", "b", "c"), "a") == 1
    assert rank_of(("a", "b", "c"), "c") == 3
    assert rank_of(("a", "b", "c"), "z") is None
    assert rank_of((), "a") is None
    assert rank_of(("a",), None) is None


def test_recent_items_counts_distinct_items_within_the_window() -> None:
    recent = RecentItems(window_s=60)
    recent.add(["a", "b"], now=0)
    recent.add(["b", "c"], now=30)
    assert recent.count(now=30) == 3
    assert recent.count(now=61) == 2  # "a" was last shown at 0
    recent.add(["a"], now=70)
    assert recent.count(now=95) == 1  # "b" and "c" (shown at 30) are out; "a" is back in
    assert recent.count(now=200) == 0
