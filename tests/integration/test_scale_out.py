"""Two workers share the partitions and both see the whole catalog, live; state survives a crash."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from streams.ops.metrics_scrape import total
from streams.ops.worker_process import WorkerProcess
from tests.integration.conftest import CATALOG, Stack, publish_catalog

pytestmark = pytest.mark.integration


def click(stack: Stack, user: str, item: str, event_id: str, ts: int) -> None:
    stack.send("events", user, {"event_id": event_id, "user_id": user, "type": "click",
                                "item_id": item, "ts": ts})


def test_two_workers_see_every_item_live(stack: Stack) -> None:
    a, b = stack.start_worker(), stack.start_worker()
    # both in the group, each with a share of the events partitions
    for w in (a, b):
        stack.wait_metric(w, "interests_assigned_partitions", lambda v: v > 0, timeout_s=90)
    assert sum(total(stack.metrics(w), "interests_assigned_partitions") for w in (a, b)) == 4

    # items published while both run: each worker embeds only its own items partitions,
    # yet each holds the full catalog
    publish_catalog(stack)
    for w in (a, b):
        stack.wait_metric(w, "interests_items", lambda v: v == len(CATALOG))
    assert total(stack.metrics(a), "interests_items_embedded_total") + total(
        stack.metrics(b), "interests_items_embedded_total") == len(CATALOG)

    users = [f"astro-{n}" for n in range(16)]
    for n, user in enumerate(users):
        click(stack, user, "s1", f"{user}-1", 1_000 + n)
    stack.flush()
    stack.recommendations(lambda got: set(users) <= set(got))
    processed = [total(stack.metrics(w), "interests_events_total", outcome="ok") for w in (a, b)]
    assert all(p > 0 for p in processed) and sum(processed) == len(users)

    # a new item, published once, reaches users on both workers
    stack.send("items", "s9", {"item_id": "s9", "title": "Apollo 13",
                               "text": "Astronauts fight to return to Earth after a failure in space",
                               "tags": ["Space", "Sci-Fi"], "ts": 5})
    stack.flush()
    for w in (a, b):
        stack.wait_metric(w, "interests_items", lambda v: v == len(CATALOG) + 1)
    for n, user in enumerate(users):
        click(stack, user, "s2", f"{user}-2", 2_000 + n)
    stack.flush()
    latest = stack.recommendations(
        lambda got: all(got.get(u, {}).get("event_id") == f"{u}-2" for u in users))
    for user in users:
        assert "s9" in [i["item_id"] for i in latest[user]["items"]][:2], latest[user]


GENRES = {"h": "c", "c": "s", "s": "h"}


def ready(stack: Stack, worker: WorkerProcess) -> None:
    """Recovered and consuming: every events partition assigned, the catalog copy caught up."""
    stack.wait_metric(worker, "interests_assigned_partitions", lambda v: v == 4, timeout_s=90)
    stack.wait_metric(worker, "interests_catalog_ready", lambda v: v == 1)
    time.sleep(1.0)  # the assignment gauge is set just before table recovery starts


def test_state_survives_a_crash_and_a_restart(stack: Stack) -> None:
    stack.settings = replace(stack.settings, top_k=len(CATALOG))  # every item not consumed
    publish_catalog(stack)
    first = stack.start_worker()
    stack.wait_metric(first, "interests_catalog_ready", lambda v: v == 1)
    users = {f"user-{genre}-{n}": genre for genre in GENRES for n in range(8)}

    def phase(step: int, item_of: dict[str, str]) -> dict[str, dict]:
        # all users at once: batches mix users of every partition
        for n, (user, item) in enumerate(item_of.items()):
            click(stack, user, item, f"{user}-{step}", step * 10_000 + n)
        stack.flush()
        return stack.recommendations(
            lambda got: all(got.get(u, {}).get("event_id") == f"{u}-{step}" for u in item_of))

    phase(1, {u: f"{g}1" for u, g in users.items()})
    phase(2, {u: f"{g}2" for u, g in users.items()})
    first.kill()  # SIGKILL: no clean shutdown, no final commit

    # a new worker on an empty disk rebuilds every user from the changelog
    second = stack.start_worker(data_dir=stack.workdir / "fresh")
    ready(stack, second)
    latest = phase(3, {u: f"{GENRES[g]}3" for u, g in users.items()})
    for user, g in users.items():
        items = [i["item_id"] for i in latest[user]["items"]]
        consumed = {f"{g}1", f"{g}2", f"{GENRES[g]}3"}
        assert not consumed & set(items), (user, items)
        assert len(items) == len(CATALOG) - 3

    # a clean restart on the same disk resumes from RocksDB and the changelog's tail
    second.stop()
    third = stack.start_worker(data_dir=stack.workdir / "fresh")
    ready(stack, third)
    latest = phase(4, {u: "d1" for u in users})
    for user, g in users.items():
        items = [i["item_id"] for i in latest[user]["items"]]
        assert not {f"{g}1", f"{g}2", f"{GENRES[g]}3", "d1"} & set(items), (user, items)
    assert third.alive()
