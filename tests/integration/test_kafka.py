"""On Apache Kafka as users run it: a worker started on a bare cluster creates its topics with their
configuration; clients nobody here wrote (kcat on librdkafka, Kafka's own Java console consumer)
produce the README's formats and read what the worker publishes; the recommendations topic,
compacted, keeps each user's latest list and nothing of an erased user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from streams.ops.broker import LocalBroker, install_kafka
from streams.ops.metrics_scrape import total
from streams.ops.worker_process import WorkerProcess
from streams.settings import Settings
from streams.topics import TOPIC_NAMES
from tests.integration.conftest import CATALOG, Stack, publish_catalog

pytestmark = pytest.mark.integration


@pytest.fixture()
def kafka(broker: LocalBroker) -> LocalBroker:
    if broker.kind != "kafka":
        pytest.skip("Apache Kafka only (INTERESTS_TEST_BROKER=tansu)")
    return broker


def bare(broker: LocalBroker, tmp_path: Path, prefix: str) -> Stack:
    """A deployment whose topics do not exist yet."""
    settings = Settings(broker=broker.url, broker_profile=broker.kind, app_id=f"{prefix}-{time.time_ns()}",
                        topic_prefix=f"{prefix}.", partitions=4, top_k=5, batch_size=200, min_event_ts_ms=0,
                        session_timeout_s=6.0)
    return Stack(settings, tmp_path)


def start_first(stack: Stack) -> WorkerProcess:
    """The worker, before any of its topics exist, until it reports them all."""
    worker = stack.start_worker()
    for name in TOPIC_NAMES:
        stack.wait_metric(worker, "interests_topic_partitions", lambda v: v > 0,
                          topic=stack.settings.topic(name))
    return worker


def topic_configs(settings: Settings, name: str) -> dict[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, settings.topic(name))])
    finally:
        admin.close()
    return {key: entry["value"] for key, entry in described["topic"][settings.topic(name)].items()}


def kcat() -> str:
    found = shutil.which("kcat")
    if found is None:
        assert not os.environ.get("CI"), "CI installs kcat (make tools)"
        pytest.skip("kcat not installed (Debian package kcat)")
    return found


def test_a_worker_started_on_a_bare_cluster_creates_its_topics_and_serves_foreign_clients(
        kafka: LocalBroker, tmp_path: Path) -> None:
    stack = bare(kafka, tmp_path, "bare")
    s = stack.settings
    # one topic made by hand beforehand, with another partition count: reported, not fatal
    admin = KafkaAdminClient(bootstrap_servers=s.bootstrap)
    admin.create_topics({s.topic("dlq"): {"num_partitions": 2, "replication_factor": 1}})
    admin.close()
    try:
        worker = start_first(stack)  # before any other topic exists
        samples = stack.metrics(worker)
        for name in ("items", "events", "recommendations", "item-neighbours"):
            assert total(samples, "interests_topic_partitions", topic=s.topic(name)) == 4, name
        assert total(samples, "interests_topic_problems", topic=s.topic("dlq"), problem="partitions") == 1
        assert "partitions" in stack.log(worker) and s.topic("dlq") in stack.log(worker)
        assert topic_configs(s, "recommendations")["cleanup.policy"] == "compact"
        events = topic_configs(s, "events")
        assert events["cleanup.policy"] == "delete"
        assert int(events["retention.ms"]) == int(s.events_retention_h * 3_600_000)

        # kcat (librdkafka) produces the README's formats: items, then a user's events
        cat = kcat()
        lines = [f"{item_id}|" + json.dumps({"item_id": item_id, "title": title, "text": text, "tags": tags,
                                              "ts": 0}) for item_id, (title, text, tags) in CATALOG.items()]
        produce = [cat, "-b", s.bootstrap, "-P", "-K", "|", "-z", "none"]
        subprocess.run([*produce, "-t", s.topic("items")], input="\n".join(lines) + "\n", text=True,
                       check=True, timeout=30)
        stack.wait_metric(worker, "interests_items", lambda v: v == len(CATALOG), timeout_s=60)
        first = {"event_id": "k-1", "user_id": "kcat-user", "type": "click", "item_id": "s1", "ts": 1_000}
        sent_at = time.monotonic()
        subprocess.run([*produce, "-t", s.topic("events")],
                       input=f"kcat-user|{json.dumps(first)}\nkcat-bad|{{not json\n", text=True,
                       check=True, timeout=30)
        latest = stack.recommendations(lambda got: "kcat-user" in got, timeout_s=30)
        first_list_s = time.monotonic() - sent_at
        assert first_list_s < 10, f"first list {first_list_s:.1f} s after the user's first event"
        assert latest["kcat-user"]["items"][0]["item_id"].startswith("s")

        # ... and reads what the worker published: the list and the dead letter
        consume = [cat, "-b", s.bootstrap, "-C", "-o", "beginning", "-e", "-f", "%k\t%s\n"]
        out = subprocess.run([*consume, "-t", s.topic("recommendations")], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        key, value = out.strip().splitlines()[-1].split("\t", 1)
        assert key == "kcat-user" and json.loads(value)["event_id"] == "k-1"
        dead = stack.read("dlq", lambda records: len(records) >= 1)
        assert json.loads(dead[0].value)["reason"] == "bad_json"
        out = subprocess.run([*consume, "-t", s.topic("dlq")], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        assert json.loads(out.strip().splitlines()[0].split("\t", 1)[1])["reason"] == "bad_json"

        # Kafka's own Java console consumer reads the recommendations too
        java = shutil.which("java")
        assert java is not None
        out = subprocess.run(
            [java, "-Xmx256m", "-cp", f"{install_kafka()}/*",
             "org.apache.kafka.tools.consumer.ConsoleConsumer",
             "--bootstrap-server", s.bootstrap, "--topic", s.topic("recommendations"), "--from-beginning",
             "--max-messages", "1", "--property", "print.key=true", "--property", "key.separator=\t"],
            capture_output=True, text=True, timeout=60, check=True).stdout
        key, value = out.strip().splitlines()[-1].split("\t", 1)
        assert key == "kcat-user" and json.loads(value)["user_id"] == "kcat-user"
        print(f"\nbare cluster: first list {1000 * first_list_s:.0f} ms after the user's first event")
    finally:
        stack.stop()


def test_the_compacted_recommendations_keep_each_users_latest_list_and_nothing_of_the_erased(
        kafka: LocalBroker, tmp_path: Path) -> None:
    stack = bare(kafka, tmp_path, "compact")
    s = stack.settings
    try:
        worker = start_first(stack)
        publish_catalog(stack)
        stack.wait_metric(worker, "interests_catalog_ready", lambda v: v == 1)
        # small segments and an eager cleaner, for this topic only, so compaction runs within the test
        admin = KafkaAdminClient(bootstrap_servers=s.bootstrap)
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, s.topic("recommendations"), configs={
            "cleanup.policy": "compact", "segment.ms": "500", "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "100", "min.compaction.lag.ms": "0"})])
        admin.close()
        users = [f"c-{n}" for n in range(6)]
        items = sorted(CATALOG)
        n = 0

        def round_of(tag: str, who: list[str]) -> None:
            nonlocal n
            for u in who:
                for _ in range(3):
                    n += 1
                    stack.send("events", u, {"event_id": f"{tag}-{n}", "user_id": u, "type": "click",
                                             "item_id": items[n % len(items)], "ts": 1_000 + n})
            stack.flush()

        round_of("a", users)
        stack.recommendations(lambda got: set(users) <= set(got))
        stack.send("events", "c-0", {"event_id": "erase-c-0", "user_id": "c-0", "type": "delete_user",
                                     "ts": 1_000_000})
        stack.flush()
        published = 0
        deadline = time.monotonic() + 120
        while True:  # new records roll the segments; the cleaner compacts the closed ones
            time.sleep(1.0)
            round_of(f"b{n}", users[1:])
            records = stack.read("recommendations", lambda got: len(got) > 0, timeout_s=30)
            published = int(total(stack.metrics(worker), "interests_recommendations_total"))
            erased = [r for r in records if r.key == b"c-0" and r.value is not None]
            if not erased and len(records) < published // 2:
                break
            assert time.monotonic() < deadline, (f"{len(records)} of {published} records left, "
                                                 f"{len(erased)} lists of the erased user")
        latest = stack.recommendations(lambda got: set(users[1:]) <= set(got))
        assert "c-0" not in latest
        for u in users[1:]:  # each one's latest list is the one of its latest event
            assert latest[u]["event_id"].startswith("b"), latest[u]
        print(f"\ncompaction: {len(records)} of {published} lists left in the topic")
    finally:
        stack.stop()
