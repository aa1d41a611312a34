"""`interests explain USER_ID`: a user's interests and why each item of their latest list is there,
read from the topics a deployment already has (the state changelog, the item vectors, the lists)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from cf.interests import activity_shares
from cf.scoring import normalise_rows
from cf.state import UserState
from streams.ops.topic_reader import latest_values
from streams.records import parse_item_vector
from streams.settings import Settings

REPRESENTATIVES = 3  # history items shown per interest


def explain(settings: Settings, user_id: str) -> dict[str, Any]:
    key = user_id.encode("utf-8")
    raw_state = latest_values(settings, f"{settings.app_id}-users-changelog", full_name=True).get(key)
    if raw_state is None:
        return {"user_id": user_id, "found": False}
    state = UserState.from_bytes(raw_state)
    items = {}
    for raw in latest_values(settings, "item-vectors").values():
        if raw is not None:
            item = parse_item_vector(raw)
            items[item.item_id] = item
    raw_list = latest_values(settings, "recommendations").get(key)
    title = {i: v.title for i, v in items.items()}
    return {
        "user_id": user_id,
        "found": True,
        "events": state.events,
        "updated_ms": state.updated_ms,
        "interests": interests(state, items, title),
        "recent": [{"item_id": i, "title": title.get(i, "")} for i in reversed(state.history[-5:])],
        "searches": searches(state, items, title),
        "list": [] if raw_list is None else [
            {**entry, "title": title.get(entry["item_id"], ""),
             "because_titles": [title.get(h, h) for h in entry.get("because", {}).get("history", [])]}
            for entry in json.loads(raw_list)["items"]],
    }


def interests(state: UserState, items: dict[str, Any], title: dict[str, str]) -> list[dict[str, Any]]:
    """Each of the user's interests: its decayed weight, its share of the recent activity (what
    ranks it, `cf.interests`) and the items that stand for it."""
    shares = activity_shares(state.interests)  # (K,)
    return [{"interest": n, "weight": round(k.weight_sum, 4), "share": round(float(shares[n]), 4),
             "representative": [{"item_id": i, "title": title.get(i, "")}
                                for i in k.items or representatives(k.vector, state.history, items)]}
            for n, k in enumerate(state.interests)]


def searches(state: UserState, items: dict[str, Any], title: dict[str, str]) -> list[dict[str, Any]]:
    """The searches the user's sequence holds, newest first: how many items came after each and
    the catalog item its text reads most like (the text itself is not kept, its vector is)."""
    if not state.searches or not items:
        return []
    ids = list(items)
    vectors = normalise_rows(np.stack([items[i].vector for i in ids]).astype(np.float32))  # (N, D)
    asked = normalise_rows(np.stack([s.vector for s in state.searches]).astype(np.float32))  # (S, D)
    nearest = np.argmax(asked @ vectors.T, axis=1).tolist()  # (S,)
    return [{"items_since": s.after, "reads_like": {"item_id": ids[n], "title": title.get(ids[n], "")}}
            for s, n in reversed(list(zip(state.searches, nearest, strict=True)))]


def representatives(vector: np.ndarray, history: tuple[str, ...], items: dict[str, Any]) -> list[str]:
    """The user's items closest to an interest vector (medoid-like), for an interest stored
    without its own (a state written before interests kept them)."""
    known = [i for i in dict.fromkeys(history) if i in items]
    if not known or not np.any(vector):
        return []
    vectors = np.stack([items[i].vector for i in known]).astype(np.float32)  # (H, D)
    u = normalise_rows(vector[None, :].astype(np.float32))[0]  # (D,)
    order = np.argsort(-(vectors @ u), kind="stable")[:REPRESENTATIVES]  # (R,)
    return [known[int(n)] for n in order]


def print_explanation(report: dict[str, Any]) -> None:
    if not report["found"]:
        print(f"user {report['user_id']}: no state (never seen, erased or expired)")
        return
    print(f"user {report['user_id']}: {report['events']} events merged")
    for interest in report["interests"]:
        names = "; ".join(r["title"] or r["item_id"] for r in interest["representative"])
        print(f"  interest {interest['interest']} (weight {interest['weight']}, "
              f"{interest['share']:.0%} of recent activity): {names}")
    print("  recently: " + "; ".join(r["title"] or r["item_id"] for r in report["recent"]))
    for search in report.get("searches", []):
        like = search["reads_like"]
        print(f"  a search {search['items_since']} items ago, read in the sequence; its text reads "
              f"like {like['title'] or like['item_id']}")
    for n, entry in enumerate(report["list"], start=1):
        because = entry.get("because", {})
        z = ", ".join(f"{c} {v:+.2f}" for c, v in because.get("components", {}).items())
        speaking = "; ".join(entry["because_titles"]) or "(no item of theirs: the signals alone)"
        print(f"  {n:2}. {entry['title'] or entry['item_id']}  score {entry['score']:.3f}")
        print(f"      from interest {because.get('interest', 0)}, because of: {speaking}")
        print(f"      signals (z): {z}")
