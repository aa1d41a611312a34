"""One worker process on the real broker: recommendations, cold start, dead letters, metrics."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import pytest

from streams.offline.replay import wait_for_catalog
from streams.ops.metrics_scrape import total
from tests.integration.conftest import BROKER_KIND, CATALOG, Stack, publish_catalog

pytestmark = pytest.mark.integration

USERS = {f"horror-{n}": "h" for n in range(4)} | {f"cook-{n}": "c" for n in range(4)}

BAD = [
    ("bad-1", b"{this is not json", "bad_json"),
    ("bad-2", json.dumps({"event_id": "x2", "type": "click", "item_id": "h1", "ts": 1}).encode(),
     "missing_field"),
    ("bad-3", json.dumps({"event_id": "x3", "user_id": "bad-3", "type": "teleport", "item_id": "h1",
                          "ts": 1}).encode(), "unknown_type"),
    ("bad-4", json.dumps({"event_id": "x4", "user_id": "bad-4", "type": "click", "item_id": "h1",
                          "ts": "noon"}).encode(), "wrong_type"),
    ("bad-5", json.dumps({"event_id": "x5", "user_id": ["bad-5"], "type": "click", "item_id": "h1",
                          "ts": 1}).encode(), "wrong_type"),
    ("bad-6", json.dumps({"event_id": "x6", "user_id": "bad-6", "type": "click", "ts": 1}).encode(),
     "missing_field"),
]


def test_events_in_recommendations_out_dead_letters_and_cold_start(stack: Stack) -> None:
    pipeline_holds(stack)


def test_the_embedded_broker_serves_the_same_pipeline(tansu_stack: Stack) -> None:
    if BROKER_KIND == "tansu":
        pytest.skip("the whole tier runs on the embedded broker")
    pipeline_holds(tansu_stack)


def pipeline_holds(stack: Stack) -> None:
    publish_catalog(stack)
    worker = stack.start_worker()
    wait_for_catalog(stack.settings, set(CATALOG), timeout_s=90)

    # valid events with malformed ones between them
    sent_ok = 0
    for n, (user, genre) in enumerate(USERS.items()):
        for i in (1, 2):
            stack.send("events", user, {"event_id": f"{user}-{i}", "user_id": user, "type": "click",
                                        "item_id": f"{genre}{i}", "ts": 1_000 * (n + i)})
            sent_ok += 1
        if n < len(BAD):
            key, value, _ = BAD[n]
            stack.send("events", key, value)
    for key, value, _ in BAD[len(USERS):]:
        stack.send("events", key, value)
    stack.send("events", "searcher", {"event_id": "q1", "user_id": "searcher", "type": "search",
                                      "text": "astronauts lost in space", "ts": 5})
    sent_ok += 1
    stack.flush()

    latest = stack.recommendations(lambda got: set(USERS) | {"searcher"} <= set(got))
    for user, genre in USERS.items():
        items = [i["item_id"] for i in latest[user]["items"]]
        assert f"{genre}3" in items[:3], (user, items)  # the one item of their genre not consumed
        assert f"{genre}1" not in items and f"{genre}2" not in items
    assert latest["searcher"]["items"][0]["item_id"].startswith("s")  # a free-text search alone
    assert not {k for k, _, _ in BAD} & set(latest)

    dead = stack.read("dlq", lambda records: len(records) >= len(BAD))
    reasons = {json.loads(r.value)["reason"] for r in dead}
    assert reasons == {reason for _, _, reason in BAD}
    first = json.loads(dead[0].value)
    assert first["topic"] == stack.settings.topic("events") and first["offset"] >= 0
    assert base64.b64decode(first["value_b64"]) in {v for _, v, _ in BAD}

    # the metrics endpoint counts what happened
    stack.wait_metric(worker, "interests_events_total", lambda v: v == sent_ok, outcome="ok")
    samples = stack.metrics(worker)
    assert total(samples, "interests_dlq_total") == len(BAD)
    for reason in reasons:
        expected = sum(1 for _, _, r in BAD if r == reason)
        assert total(samples, "interests_dlq_total", reason=reason) == expected
    assert total(samples, "interests_items") == len(CATALOG)
    assert total(samples, "interests_recommendations_total") >= len(USERS) + 1
    assert total(samples, "interests_end_to_end_seconds_count") == sent_ok

    # cold start: a new item, never interacted with, reaches the users whose interests match its text
    stack.send("items", "h9", {"item_id": "h9", "title": "Dawn of the Dead",
                               "text": "Zombies overrun a shopping mall", "tags": ["Horror"], "ts": 9})
    stack.flush()
    stack.wait_metric(worker, "interests_items", lambda v: v == len(CATALOG) + 1)
    stack.send("events", "horror-0", {"event_id": "horror-0-3", "user_id": "horror-0", "type": "click",
                                      "item_id": "h3", "ts": 10_000})
    stack.flush()
    latest = stack.recommendations(lambda got: got.get("horror-0", {}).get("event_id") == "horror-0-3")
    # nobody has interacted with it, so co-occurrence and popularity cannot rank it: its text does
    # (in the top-k, or else as the user's new-item pick)
    offered = [i["item_id"] for i in latest["horror-0"]["items"] + latest["horror-0"]["new_items"]]
    assert "h9" in offered, latest["horror-0"]

    # the exposition format passes promtool where the project's setup installed it
    promtool = shutil.which("promtool")
    if promtool is None:
        assert not os.environ.get("CI"), "CI installs promtool (make tools)"
        pytest.skip("promtool not installed")
    check = subprocess.run([promtool, "check", "metrics"], input=stack.metrics_text(worker),
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
