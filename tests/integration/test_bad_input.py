"""Garbage beside good events, through a real worker: every bad payload lands in the DLQ with its
reason, the worker never dies, and every good event is processed."""

from __future__ import annotations

import collections
import json
import time
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from streams.offline.replay import wait_for_catalog
from streams.records import Invalid, TimeBounds
from streams.settings import Settings
from tests.integration.conftest import CATALOG, Stack, publish_catalog
from tests.payloads import bad_payloads

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
DEFAULTS = Settings()
BOUNDS = TimeBounds(NOW, DEFAULTS.min_event_ts_ms, int(DEFAULTS.max_event_ahead_s * 1000))
BAD = 300


def draw_bad(n: int) -> list[tuple[bytes | None, bytes | None, str]]:
    """n varied bad payloads from the property test's strategy (deterministic: derandomized)."""
    out: list[tuple[bytes | None, bytes | None, str]] = []

    @settings(max_examples=n, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(bad_payloads(BOUNDS))
    def collect(payload: tuple[bytes | None, bytes | None, str]) -> None:
        out.append(payload)

    collect()
    return out


def test_bad_payloads_go_to_the_dlq_and_good_events_all_get_through(stack: Stack) -> None:
    bad = draw_bad(BAD)
    assert set(Invalid.REASONS) == {reason for _, _, reason in bad}  # every kind of garbage
    # production's bounds on event time, not the other scenarios' small toy times
    stack.settings = replace(stack.settings, min_event_ts_ms=DEFAULTS.min_event_ts_ms)
    publish_catalog(stack)
    worker = stack.start_worker()
    wait_for_catalog(stack.settings, set(CATALOG), timeout_s=90)
    items = sorted(CATALOG)
    good = 0
    for n, (key, value, _) in enumerate(bad):
        stack.producer.send(stack.settings.topic("events"), key=key, value=value)
        user = f"user-{n % 40}"
        stack.send("events", user, {"event_id": f"good-{n}", "user_id": user, "type": "click",
                                    "item_id": items[n % len(items)], "ts": NOW - 60_000 + n})
        good += 1
    stack.flush()

    dead = stack.read("dlq", lambda records: len(records) >= len(bad), timeout_s=180)
    got = collections.Counter(json.loads(r.value)["reason"] for r in dead)
    assert got == collections.Counter(reason for _, _, reason in bad)
    stack.wait_metric(worker, "interests_events_total", lambda v: v == good, timeout_s=120, outcome="ok")
    assert worker.alive()
    # and it keeps serving
    latest = stack.recommendations(lambda got: {f"user-{u}" for u in range(40)} <= set(got))
    assert all(rec["items"] for rec in latest.values())
