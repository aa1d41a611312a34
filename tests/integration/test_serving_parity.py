"""One scorer for both paths: what a worker publishes is what `cf.serving.HybridScorer` computes in
process from the same state, with the factor and sequential models that `interests train-cf`
trained from the event log on the broker."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from cf.artifact import CFArtifact
from cf.catalog import ItemCatalog
from cf.neighbours import NeighbourIndex
from cf.serving import HybridScorer
from cf.state import UserState
from streams.cooccurrence_agent import parse_row
from streams.records import parse_item_vector
from tests.integration.conftest import CATALOG, Stack, latest_values, publish_catalog
from tests.integration.test_scale_out import click, ready

pytestmark = pytest.mark.integration


def test_published_lists_are_the_in_process_scorers(stack: Stack) -> None:
    publish_catalog(stack)
    first = stack.start_worker()
    stack.wait_metric(first, "interests_catalog_ready", lambda v: v == 1)
    rng = random.Random(7)
    users = [f"p{n}" for n in range(24)]
    for step in range(6):
        for n, user in enumerate(users):
            click(stack, user, rng.choice(sorted(CATALOG)), f"{user}-{step}", step * 100_000 + n)
    stack.flush()
    stack.recommendations(lambda got: all(got.get(u, {}).get("event_id") == f"{u}-5" for u in users))
    touched = stack.wait_metric(first, "interests_item_rows_published_total", lambda v: v > 0)
    first.stop()

    # train from the event log: the items and events topics, as the workers saw them
    artifact = stack.workdir / "cf"
    env = {**os.environ, **stack.settings.to_env()}
    trained = subprocess.run(
        [sys.executable, "-m", "streams.cli", "train-cf", "--from-broker", "--out", str(artifact),
         "--factors", "8", "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert f"{6 * len(users)} item events" in trained.stdout
    model = CFArtifact.load(artifact)
    assert model.sequence is not None  # the sequential model is trained with it, and served

    stack.settings = replace(stack.settings, cf_model=str(artifact))
    second = stack.start_worker(data_dir=stack.workdir / "state-0")
    ready(stack, second)
    stack.wait_metric(second, "interests_neighbour_rows", lambda v: v == len(CATALOG))
    assert touched > 0

    # searches move the text interest and enter the sequence (`cf.searches`), and add no
    # co-occurrence: the shared rows stay as read
    probes = users[:8]
    for n, user in enumerate(probes):
        stack.send("events", user, {"event_id": f"{user}-q", "user_id": user, "type": "search",
                                    "text": "astronauts lost in space", "ts": 900_000 + n})
    stack.flush()
    published = stack.recommendations(
        lambda got: all(got.get(u, {}).get("event_id") == f"{u}-q" for u in probes))

    index = NeighbourIndex(stack.settings.cooc())
    for key, value in latest_values(stack, stack.settings.topic("item-neighbours")).items():
        index.apply(key.decode(), None if value is None else parse_row(value))
    vectors = latest_values(stack, stack.settings.topic("item-vectors"))
    catalog = ItemCatalog(384)
    for value in vectors.values():
        assert value is not None
        item_id, _, _, vector, _ = parse_item_vector(value)
        catalog.upsert(item_id, vector)
    raw_states = latest_values(stack, f"{stack.settings.app_id}-users-changelog")
    states = {u: UserState.from_bytes(raw) for u in probes if (raw := raw_states[u.encode()])}
    assert all(f"{u}-q" in s.seen for u, s in states.items()) and set(states) == set(probes)
    assert all([q.after for q in s.searches] == [0] for s in states.values())  # the newest position

    scorer = HybridScorer(catalog, index, model.model, model.policy,
                          fold_in_items=stack.settings.cf_fold_in_items, sequence=model.sequence)
    expected = scorer.top_k(states, stack.settings.top_k)
    for user in probes:
        got = published[user]
        assert model.version in got["model"]
        assert [i["item_id"] for i in got["items"]] == [s.item_id for s in expected[user].items], user
        np.testing.assert_allclose([i["score"] for i in got["items"]],
                                   [s.score for s in expected[user].items], atol=1e-4)
        assert [i["item_id"] for i in got["new_items"]] == [s.item_id for s in expected[user].new_items]
        for name in ("seq", "cf", "cooc", "text"):  # every signal, the sequential model's included
            np.testing.assert_allclose([i["because"]["components"][name] for i in got["items"]],
                                       [b.components[name] for b in expected[user].because], atol=2e-4)
    assert any(i["because"]["components"]["seq"] != 0 for u in probes for i in published[u]["items"])
    print(json.dumps({u: published[u]["items"] for u in probes[:2]}))
