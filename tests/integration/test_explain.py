"""Explanations from a real worker: every published item says which of the user's own items speak
for it, and `interests explain` reads a user's interests and reasons back from the topics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.conftest import CATALOG, Stack, publish_catalog

pytestmark = pytest.mark.integration


def test_every_listed_item_names_the_users_own_items_and_explain_reads_them_back(stack: Stack) -> None:
    publish_catalog(stack)
    worker = stack.start_worker()
    stack.wait_metric(worker, "interests_catalog_ready", lambda v: v == 1)
    taken = {"fan": ["h1", "h2", "s1"], "cook": ["c1", "c2"], "seeker": []}
    for user, items in taken.items():
        for n, item in enumerate(items):
            stack.send("events", user, {"event_id": f"{user}-{n}", "user_id": user, "type": "like",
                                        "item_id": item, "ts": 1_000 + n})
    stack.send("events", "seeker", {"event_id": "seeker-s", "user_id": "seeker", "type": "search",
                                    "text": "astronauts lost in space", "ts": 2_000})
    stack.flush()
    last = {"fan": "fan-2", "cook": "cook-1", "seeker": "seeker-s"}
    lists = stack.recommendations(
        lambda got: all(got.get(u, {}).get("event_id") == e for u, e in last.items()))

    for user, rec in lists.items():
        for item in rec["items"] + rec["new_items"]:
            because = item["because"]
            assert set(because["history"]) <= set(taken[user]), (user, item)
            assert set(because["components"]) == {"text", "cf", "cooc", "popularity", "seq"}
    horror = next(i for i in lists["fan"]["items"] if i["item_id"] == "h3")
    assert set(horror["because"]["history"]) & {"h1", "h2"}  # the other horror films speak for it

    env = {**os.environ, **stack.settings.to_env()}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "explain", "fan", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["events"] == 3
    named = {r["item_id"] for interest in report["interests"] for r in interest["representative"]}
    assert named == set(taken["fan"])  # each of the fan's items stands for one of their interests
    assert sum(i["share"] for i in report["interests"]) == pytest.approx(1.0, abs=1e-3)
    for item in lists["fan"]["items"]:  # every item came from one of the fan's interests
        assert 0 <= item["because"]["interest"] < len(report["interests"])
    assert [e["item_id"] for e in report["list"]] == [i["item_id"] for i in lists["fan"]["items"]]
    h3 = next(e for e in report["list"] if e["item_id"] == "h3")
    assert set(h3["because_titles"]) <= {CATALOG[i][0] for i in taken["fan"]} and h3["because_titles"]
    text = subprocess.run([sys.executable, "-m", "streams.cli", "explain", "fan"],
                          capture_output=True, text=True, env=env, timeout=120).stdout
    assert "because of: " in text and CATALOG["h3"][0] in text
    seeker = subprocess.run([sys.executable, "-m", "streams.cli", "explain", "seeker", "--json"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert seeker.returncode == 0, seeker.stderr[-2000:]
    searched = json.loads(seeker.stdout)["searches"]  # kept as a position of the sequence
    assert [s["items_since"] for s in searched] == [0]
    assert searched[0]["reads_like"]["item_id"] in {"s1", "s2", "s3"}  # the space films
    gone = subprocess.run([sys.executable, "-m", "streams.cli", "explain", "nobody"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert gone.returncode == 1 and "no state" in gone.stdout
