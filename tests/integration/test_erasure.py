"""Forgetting users for real: an erasure request and an idle expiry remove a user's state (a
tombstone in the changelog) and their recommendations (a tombstone on the output topic), and a
worker rebuilt from the changelogs on an empty disk does not bring them back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streams.records import dumps
from tests.integration.conftest import Stack, latest_values, publish_catalog
from tests.integration.test_failures import user_states

pytestmark = pytest.mark.integration
DAY_MS = 86_400_000
T0 = 1_700_000_000_000  # event times of the scenario (2023), advanced by whole days


def click(user: str, n: int, item: str, ts: int) -> dict[str, object]:
    return {"event_id": f"{user}-{n}", "user_id": user, "type": "click", "item_id": item, "ts": ts}


def test_erased_and_expired_users_leave_no_state_or_list_even_after_a_rebuild(stack: Stack) -> None:
    # users expire 30 days (event time) after their last event; checked every second
    stack.settings = replace(stack.settings, user_ttl_s=30 * 86_400, user_ttl_check_s=1.0)
    publish_catalog(stack)
    worker = stack.start_worker()
    stack.wait_metric(worker, "interests_catalog_ready", lambda v: v == 1)
    for user, item in (("keep", "h1"), ("forget", "c1"), ("idle", "s1"), ("back", "d1")):
        stack.send("events", user, click(user, 0, item, T0))
    stack.flush()
    stack.recommendations(lambda got: {"keep", "forget", "idle", "back"} <= set(got))

    # "forget" asks to be erased; 40 days later "keep" and "back" are active, "idle" is not
    stack.send("events", "forget", {"event_id": "forget-del", "user_id": "forget", "type": "delete_user",
                                    "ts": T0 + 1})
    stack.send("events", "keep", click("keep", 1, "h2", T0 + 40 * DAY_MS))
    stack.send("events", "back", click("back", 1, "d1", T0 + 40 * DAY_MS))
    stack.flush()
    stack.wait_metric(worker, "interests_users_erased_total", lambda v: v >= 1, reason="requested")
    stack.wait_metric(worker, "interests_users_erased_total", lambda v: v >= 1, reason="expired")

    def assert_forgotten() -> None:
        changelog = latest_values(stack, f"{stack.settings.app_id}-users-changelog")
        assert changelog[b"forget"] is None and changelog[b"idle"] is None  # tombstones
        assert set(user_states(stack)) == {"keep", "back"}
        lists = latest_values(stack, stack.settings.topic("recommendations"))
        assert lists[b"forget"] is None and lists[b"idle"] is None
        assert lists[b"keep"] is not None and lists[b"back"] is not None

    assert_forgotten()
    # a new worker on an empty disk rebuilds the table from the changelog: still forgotten
    worker.stop()
    rebuilt = stack.start_worker()
    stack.wait_metric(rebuilt, "interests_catalog_ready", lambda v: v == 1)
    stack.send("events", "keep", click("keep", 2, "h3", T0 + 41 * DAY_MS))
    stack.flush()
    stack.recommendations(lambda got: got.get("keep", {}).get("event_id") == "keep-2")
    stack.wait_metric(rebuilt, "interests_table_keys", lambda v: v == 2, timeout_s=30, table="users")
    assert_forgotten()
    assert user_states(stack)["keep"].events == 3  # the kept user's state came back whole
    # an erasure of someone unknown is harmless, and the request is not a recommendable event
    stack.send("events", "nobody", dumps({"event_id": "x", "user_id": "nobody", "type": "delete_user",
                                          "ts": T0}))
    stack.flush()
    stack.wait_metric(rebuilt, "interests_users_erased_total", lambda v: v >= 1, reason="requested")
    assert rebuilt.alive()
