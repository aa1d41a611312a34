"""Failures mid-stream, with real processes: a worker killed with SIGKILL, a second worker joining,
the broker frozen. After each, every accepted event is in its user's state exactly once
(redeliveries are counted, and skipped by the state), and the worker keeps serving."""

from __future__ import annotations

import collections
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cf.state import UserState
from streams.ops.broker import LocalBroker, free_port, local_broker
from streams.ops.metrics_scrape import total
from streams.ops.topic_reader import read_from_beginning
from streams.ops.worker_process import WorkerProcess
from tests.integration.conftest import BROKER_KIND, CATALOG, Stack, latest_values, publish_catalog, stack_on

pytestmark = pytest.mark.integration
ITEMS = sorted(CATALOG)
FAULTS = Path(__file__).parent / "faults"  # injected into worker processes (its sitecustomize.py)


def stream_of(users: int, per_user: int, tag: str) -> list[tuple[str, str, str]]:
    """(user, event id, item) in send order: users interleaved, so every batch mixes partitions."""
    return [(f"{tag}-u{u}", f"{tag}-u{u}-e{n}", ITEMS[(u + n) % len(ITEMS)])
            for n in range(per_user) for u in range(users)]


def send(stack: Stack, events: list[tuple[str, str, str]], ts0: int = 1_000) -> None:
    for n, (user, event_id, item) in enumerate(events):
        stack.send("events", user, {"event_id": event_id, "user_id": user, "type": "click",
                                    "item_id": item, "ts": ts0 + n})
    stack.flush()


def wait_for_last(stack: Stack, events: list[tuple[str, str, str]], timeout_s: float = 120) -> None:
    last = {user: event_id for user, event_id, _ in events}
    stack.recommendations(lambda got: all(got.get(u, {}).get("event_id") == e for u, e in last.items()),
                          timeout_s=timeout_s)


def user_states(stack: Stack) -> dict[str, UserState]:
    changelog = f"{stack.settings.app_id}-users-changelog"
    return {k.decode(): UserState.from_bytes(v) for k, v in latest_values(stack, changelog).items()
            if k is not None and v is not None}


def published_twice(stack: Stack) -> int:
    """Recommendations published again for the same (user, event): the visible redeliveries."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    consumer = read_from_beginning(stack.settings, "recommendations", consumer_timeout_ms=1500,
                                   fetch_max_wait_ms=50)
    try:
        for r in consumer:  # to the end: stops after 1.5 s without a record
            if r.value is None:
                continue
            rec = json.loads(r.value)
            counts[(rec["user_id"], rec["event_id"])] += 1
    finally:
        consumer.close()
    assert counts, "no recommendation read back"
    return sum(n - 1 for n in counts.values())


def assert_every_event_once(stack: Stack, events: list[tuple[str, str, str]]) -> None:
    sent = collections.Counter(user for user, _, _ in events)
    states = user_states(stack)
    for user, n in sent.items():
        assert user in states, f"{user}: no state"
        missing = sorted({e for u, e, _ in events if u == user} - set(states[user].seen))
        assert states[user].events == n, (f"{user}: {states[user].events} events merged, {n} sent; "
                                          f"not among its latest merged ids: {missing}")


def serving(stack: Stack, events: list[tuple[str, str, str]]) -> WorkerProcess:
    """A worker with the catalog loaded that has published the lists of `events`."""
    publish_catalog(stack)
    worker = stack.start_worker()
    stack.wait_metric(worker, "interests_catalog_ready", lambda v: v == 1)
    send(stack, events)
    wait_for_last(stack, events)
    return worker


def test_a_worker_killed_mid_stream_loses_nothing(stack: Stack) -> None:
    publish_catalog(stack)
    first = stack.start_worker()
    stack.wait_metric(first, "interests_catalog_ready", lambda v: v == 1)
    events = stream_of(users=100, per_user=40, tag="crash")  # 4,000 events
    send(stack, events)
    # kill it once it has absorbed part of the stream, and before it is done
    stack.wait_metric(first, "interests_events_total", lambda v: v >= 500, outcome="ok")
    done_before = total(stack.metrics(first), "interests_events_total", outcome="ok")
    first.kill()
    assert done_before < len(events), "the worker finished before the kill: make the stream longer"

    second = stack.start_worker(data_dir=first.settings.data_dir)  # the same disk, as after a reboot
    wait_for_last(stack, events)
    assert_every_event_once(stack, events)
    duplicates = total(stack.metrics(second), "interests_events_total", outcome="duplicate")
    twice = published_twice(stack)
    print(f"\nkill -9 after {done_before:.0f} of {len(events)} events: {duplicates:.0f} redelivered "
          f"events skipped by the state, {twice} lists published twice")
    assert duplicates <= len(events)  # at least once: bounded by what was not committed
    assert second.alive()


def test_a_second_worker_joining_mid_stream_takes_over_partitions_and_their_state(stack: Stack) -> None:
    before = stream_of(users=40, per_user=10, tag="rb")
    first = serving(stack, before)

    second = stack.start_worker()
    during = [(u, e.replace("-e", "-f"), i) for u, e, i in stream_of(users=40, per_user=20, tag="rb")]
    send(stack, during, ts0=100_000)  # while the group rebalances
    stack.wait_metric(second, "interests_assigned_partitions", lambda v: v > 0, timeout_s=90)
    after = [(u, e.replace("-e", "-g"), i) for u, e, i in stream_of(users=40, per_user=5, tag="rb")]
    send(stack, after, ts0=200_000)
    wait_for_last(stack, after)

    assigned = [total(stack.metrics(w), "interests_assigned_partitions") for w in (first, second)]
    assert assigned[0] > 0 and assigned[1] > 0 and sum(assigned) == 4
    # the users the second worker now serves had history on the first: it came with the partitions
    assert total(stack.metrics(second), "interests_events_total", outcome="ok") > 0
    assert_every_event_once(stack, before + during + after)
    # what the first worker processed before the group rebalanced was committed then: no event
    # was processed twice (Faust alone committed nothing there: 600 redelivered to each worker)
    redelivered = [total(stack.metrics(w), "interests_events_total", outcome="duplicate")
                   for w in (first, second)]
    assert redelivered == [0, 0]
    # the partitions the first worker kept had their changelog offsets recorded when the group
    # rebalanced: Faust listed their ends again and found nothing to read back
    log = first.log_path.read_text(errors="replace")
    assert log.count("Highwater for active changelog partitions") >= 2  # both assignments listed
    assert "Restoring state from changelog topics" not in log


def test_a_table_recovery_that_reads_nothing_is_resumed_by_the_worker(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # every rebalance after the first loses Faust's resume of the users table's changelog
    # partitions (tests/integration/faults): left to Faust, both workers wait for those records
    # for ever; the recovery watch resumes them after 15 s
    path = [str(FAULTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    monkeypatch.setenv("INTERESTS_TEST_FAULT", "recovery_resume_lost")
    before = stream_of(users=20, per_user=5, tag="rs")
    first = serving(stack, before)

    second = stack.start_worker()
    stack.wait_metric(second, "interests_assigned_partitions", lambda v: v > 0, timeout_s=90)
    after = [(u, e.replace("-e", "-g"), i) for u, e, i in stream_of(users=20, per_user=5, tag="rs")]
    send(stack, after, ts0=100_000)
    wait_for_last(stack, after)

    assert "fault: resume of" in first.log_path.read_text(errors="replace")  # the fault was there
    stalls = [total(stack.metrics(w), "interests_recovery_stalls_total") for w in (first, second)]
    assert sum(stalls) >= 1, stalls
    assert first.alive() and second.alive()
    assert_every_event_once(stack, before + after)


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of its own: these tests freeze it and kill it."""
    with local_broker(BROKER_KIND, free_port(), tmp_path / "broker", tmp_path / "broker.log") as b:
        yield b


@pytest.fixture()
def own_stack(own_broker: LocalBroker, tmp_path: Path) -> Iterator[Stack]:
    yield from stack_on(own_broker, tmp_path)


def test_the_worker_reconnects_after_the_broker_froze(own_broker: LocalBroker, own_stack: Stack) -> None:
    stack, settings = own_stack, own_stack.settings
    before = stream_of(users=10, per_user=5, tag="fz")
    worker = serving(stack, before)

    # every client connection stalls past the session timeout: requests time out, the group
    # membership expires, and the clients must find their way back
    assert own_broker.process is not None
    os.kill(own_broker.process.pid, signal.SIGSTOP)
    time.sleep(2 * settings.session_timeout_s)
    os.kill(own_broker.process.pid, signal.SIGCONT)

    after = [(u, e.replace("-e", "-g"), i) for u, e, i in stream_of(users=10, per_user=5, tag="fz")]
    send(stack, after, ts0=100_000)
    wait_for_last(stack, after, timeout_s=120)
    assert worker.alive()
    assert_every_event_once(stack, before + after)


def test_the_broker_killed_mid_stream_and_restarted_loses_nothing(own_broker: LocalBroker,
                                                                  own_stack: Stack) -> None:
    if own_broker.kind != "kafka":
        pytest.skip("the embedded broker keeps topics in memory: a restart starts empty")
    stack = own_stack
    publish_catalog(stack)
    worker = stack.start_worker()
    stack.wait_metric(worker, "interests_catalog_ready", lambda v: v == 1)
    events = stream_of(users=20, per_user=40, tag="bk")
    half = len(events) // 2
    send(stack, events[:half])
    stack.wait_metric(worker, "interests_events_total", lambda v: v >= half // 4, outcome="ok")
    own_broker.kill()  # SIGKILL, mid-stream: the worker's requests fail, its producer retries
    time.sleep(2)
    own_broker.start()  # same port, same log dir
    send(stack, events[half:], ts0=100_000)
    wait_for_last(stack, events, timeout_s=180)
    assert worker.alive()
    assert_every_event_once(stack, events)
    merged = total(stack.metrics(worker), "interests_events_total", outcome="ok")
    duplicates = total(stack.metrics(worker), "interests_events_total", outcome="duplicate")
    assert merged == len(events)  # merged once each; a redelivery is counted as a duplicate
    print(f"broker SIGKILL: {merged:.0f} merged, {duplicates:.0f} redelivered and skipped")
