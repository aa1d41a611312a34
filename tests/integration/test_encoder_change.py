"""A worker restarted with another encoder re-embeds the catalog and re-bases user states:
vectors of two encoder versions are never mixed, and users keep their interests."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cf.state import UserState
from streams.offline.replay import wait_for_catalog
from streams.records import parse_item_vector
from tests.integration.conftest import CATALOG, Stack, latest_values, publish_catalog

pytestmark = pytest.mark.integration


def _click(stack: Stack, user: str, item: str, n: int) -> None:
    stack.send("events", user, {"event_id": f"{user}-{n}", "user_id": user, "type": "click",
                                "item_id": item, "ts": 1_000 * n})


def test_a_new_encoder_version_reembeds_the_catalog_and_rebases_users(stack: Stack) -> None:
    stack.settings = replace(stack.settings, encoder_backend="torch-fp32")
    publish_catalog(stack)
    first = stack.start_worker()
    wait_for_catalog(stack.settings, set(CATALOG), timeout_s=90)
    for n, item in enumerate(("h1", "h2"), start=1):
        _click(stack, "fan", item, n)
    stack.flush()
    before = stack.recommendations(lambda got: got.get("fan", {}).get("event_id") == "fan-2")
    old_space = before["fan"]["model"].split("+")[0]
    first.stop()

    # the same state folder and topics, another encoder version (int8 weights: another space)
    stack.settings = replace(stack.settings, encoder_backend="onnx-int8")
    second = stack.start_worker(data_dir=first.settings.data_dir)
    new_space = f"{old_space}+int8"

    def reembedded(records: list) -> bool:
        latest = {r.key: r.value for r in records}
        return all(latest.get(i.encode()) and parse_item_vector(latest[i.encode()]).space == new_space
                   for i in CATALOG)

    stack.read("item-vectors", reembedded, timeout_s=120)
    stack.wait_metric(second, "interests_items", lambda v: v == len(CATALOG))
    _click(stack, "fan", "s1", 3)
    stack.flush()
    after = stack.recommendations(lambda got: got.get("fan", {}).get("event_id") == "fan-3", timeout_s=90)
    assert after["fan"]["model"].startswith(new_space + "+")
    # the state was re-based into the new space from its history (h1, h2), then s1 merged in
    state = UserState.from_bytes(latest_values(stack, f"{stack.settings.app_id}-users-changelog")[b"fan"])
    assert (state.space, state.events, state.history) == (new_space, 3, ("h1", "h2", "s1"))
    assert state.weight_sum == pytest.approx(3.0, rel=1e-3)
    items = [i["item_id"] for i in after["fan"]["items"]]
    assert "h3" in items[:3], items  # the horror interest survived the change
    assert not {"h1", "h2", "s1"} & set(items)
