"""Real parts: one Apache Kafka broker process per test session (INTERESTS_TEST_BROKER=tansu runs
the tier on the embedded broker instead), worker processes per test. A smoke set runs on Tansu
too (`tansu_stack`): the embedded broker of the demo."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from streams.admin import ensure_topics
from streams.connection import client_options
from streams.ops.broker import BrokerKind, EmbeddedBroker, LocalBroker, free_port, local_broker, wait_for_port
from streams.ops.metrics_scrape import scrape, total
from streams.ops.topic_reader import latest_values as read_latest
from streams.ops.topic_reader import read_from_beginning
from streams.ops.worker_process import WorkerProcess
from streams.records import dumps
from streams.settings import Settings

pytestmark = pytest.mark.integration
_names = itertools.count()
BROKER_KIND: BrokerKind = "tansu" if os.environ.get("INTERESTS_TEST_BROKER") == "tansu" else "kafka"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    folder = tmp_path_factory.mktemp("broker")
    with local_broker(BROKER_KIND, free_port(), folder, folder / "broker.log") as b:
        yield b


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    log = tmp_path_factory.mktemp("tansu") / "broker.log"
    with EmbeddedBroker(port=free_port(), log_file=log) as b:
        yield b


@dataclass
class Stack:
    """One isolated deployment on the shared broker: its own topic prefix and consumer group."""

    settings: Settings
    workdir: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    _producer: KafkaProducer | None = None

    def start_worker(self, data_dir: Path | None = None) -> WorkerProcess:
        n = len(self.workers)
        settings = replace(
            self.settings, metrics_port=free_port(), web_port=free_port(),
            data_dir=data_dir or self.workdir / f"state-{n}",
        )
        worker = WorkerProcess(settings, self.workdir / f"worker-{n}.log").start()
        self.workers.append(worker)
        deadline = time.monotonic() + 90
        while True:
            assert worker.alive(), self.log(worker)
            try:
                wait_for_port(settings.metrics_host, settings.metrics_port, timeout_s=1)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "worker metrics never came up"
        return worker

    def log(self, worker: WorkerProcess) -> str:
        return worker.log_path.read_text(errors="replace")[-4000:]

    def metrics(self, worker: WorkerProcess) -> Any:
        s = worker.settings
        return scrape(f"http://{s.metrics_host}:{s.metrics_port}/metrics")

    def metrics_text(self, worker: WorkerProcess) -> str:
        import urllib.request

        s = worker.settings
        with urllib.request.urlopen(f"http://{s.metrics_host}:{s.metrics_port}/metrics") as r:
            return str(r.read().decode())

    def wait_metric(self, worker: WorkerProcess, name: str, check: Callable[[float], bool],
                    timeout_s: float = 60, **labels: str) -> float:
        deadline = time.monotonic() + timeout_s
        while True:
            assert worker.alive(), self.log(worker)
            value = total(self.metrics(worker), name, **labels)
            if check(value):
                return value
            assert time.monotonic() < deadline, f"{name}{labels} stuck at {value}\n{self.log(worker)}"
            time.sleep(0.3)

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=self.settings.bootstrap, acks="all",
                                           **client_options(self.settings))
        return self._producer

    def send(self, topic: str, key: str | None, value: bytes | dict[str, Any] | None) -> None:
        raw = dumps(value) if isinstance(value, dict) else value
        self.producer.send(self.settings.topic(topic), key=None if key is None else key.encode(), value=raw)

    def flush(self) -> None:
        self.producer.flush()

    def read(self, topic: str, until: Callable[[list[Any]], bool], timeout_s: float = 60) -> list[Any]:
        """Every record of a topic from the beginning, until `until(records)` holds."""
        consumer = read_from_beginning(self.settings, topic, consumer_timeout_ms=300, fetch_max_wait_ms=50)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        try:
            while not until(records):
                assert time.monotonic() < deadline, (
                    f"{topic}: condition not met with {len(records)} records\n{self.diagnose()}")
                for w in self.workers:
                    assert not w.process or w.alive() or w.process.returncode is not None
                records.extend(consumer)
        finally:
            consumer.close()
        return records

    def recommendations(self, until: Callable[[dict[str, dict[str, Any]]], bool],
                        timeout_s: float = 60) -> dict[str, dict[str, Any]]:
        """Latest list per user, read until `until(latest)` holds."""
        latest: dict[str, dict[str, Any]] = {}

        def done(records: list[Any]) -> bool:
            for r in records[len(done.seen):]:  # type: ignore[attr-defined]
                if r.value is None:  # a tombstone: the user was erased
                    latest.pop(r.key.decode(), None)
                    continue
                rec = json.loads(r.value)
                latest[rec["user_id"]] = rec
            done.seen = list(records)  # type: ignore[attr-defined]
            return until(latest)

        done.seen = []  # type: ignore[attr-defined]
        self.read("recommendations", done, timeout_s)
        return latest

    def diagnose(self) -> str:
        out = []
        for w in self.workers:
            if w.alive():
                text = self.metrics_text(w)
                out.append("\n".join(line for line in text.splitlines()
                                     if line.startswith(("interests_events", "interests_assigned",
                                                         "interests_catalog", "interests_dlq"))))
            out.append(self.log(w)[-1500:])
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            if w.alive() and w.process is not None and Path(spy).exists():
                dump = subprocess.run([spy, "dump", "--pid", str(w.process.pid)],
                                      capture_output=True, text=True)
                out.append(dump.stdout)
        text = "\n----\n".join(out)
        (self.workdir / "diagnose.txt").write_text(text)
        return text

    def stop(self) -> None:
        if self._producer is not None:
            self._producer.close()
        for w in self.workers:
            w.stop()


def stack_settings(broker: LocalBroker, env: Mapping[str, str] | None = None) -> Settings:
    """A deployment of its own on `broker`; `env`: INTERESTS_* connection settings (a secured one)."""
    n = next(_names)
    return Settings.from_env(
        env or {}, broker=broker.url if env is None else Settings.from_env(env).broker,
        broker_profile=broker.kind, app_id=f"it-{n}-{time.time_ns()}",
        topic_prefix=f"it{n}.", partitions=4, top_k=5, batch_size=200,
        session_timeout_s=6.0,  # Kafka's least: a killed worker's partitions move on sooner
        min_event_ts_ms=0,  # the scenarios' event times are small numbers; the fuzz test sets it back
    )


def stack_on(broker: LocalBroker, tmp_path: Path) -> Iterator[Stack]:
    settings = stack_settings(broker)
    ensure_topics(settings)
    s = Stack(settings, tmp_path)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture()
def stack(broker: LocalBroker, tmp_path: Path) -> Iterator[Stack]:
    yield from stack_on(broker, tmp_path)


@pytest.fixture()
def tansu_stack(tansu: LocalBroker, tmp_path: Path) -> Iterator[Stack]:
    yield from stack_on(tansu, tmp_path)


CATALOG = {
    "h1": ("Night of the Living Dead", "Zombies besiege a farmhouse", ["Horror"]),
    "h2": ("Halloween", "A masked killer stalks babysitters", ["Horror", "Thriller"]),
    "h3": ("The Exorcist", "A girl possessed by a demon", ["Horror"]),
    "c1": ("Julie and Julia", "A blogger cooks every recipe of a French cookbook", ["Cooking", "Comedy"]),
    "c2": ("Chef", "A chef quits and starts a food truck", ["Cooking", "Comedy"]),
    "c3": ("Ratatouille", "A rat dreams of cooking in a Paris restaurant", ["Animation", "Cooking"]),
    "s1": ("Interstellar", "Astronauts travel through a wormhole", ["Sci-Fi", "Space"]),
    "s2": ("The Martian", "An astronaut stranded on Mars", ["Sci-Fi", "Space"]),
    "s3": ("Gravity", "Two astronauts adrift in orbit", ["Sci-Fi", "Space"]),
    "d1": ("The Godfather", "A mafia family's patriarch hands over power", ["Crime", "Drama"]),
}


def publish_catalog(stack: Stack, items: dict[str, tuple[str, str, list[str]]] = CATALOG) -> None:
    for item_id, (title, text, tags) in items.items():
        item = {"item_id": item_id, "title": title, "text": text, "tags": tags, "ts": 0}
        stack.send("items", item_id, item)
    stack.flush()


def latest_values(stack: Stack, topic: str) -> dict[bytes, bytes | None]:
    """The last value per key of a whole topic (full name), read to its end."""
    return read_latest(stack.settings, topic, full_name=True)
