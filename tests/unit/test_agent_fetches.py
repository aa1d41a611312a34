"""The agents' group consumer fetches as the settings say, not as Faust hard-codes it."""

from __future__ import annotations

from typing import Any

import pytest
from faust.transport.drivers import aiokafka as driver

from streams import faust_consumer
from streams.settings import Settings


class _Consumer:
    _fetch_max_wait_ms = 1500  # what Faust passes
    _fetch_min_bytes = 1  # aiokafka's default


def test_the_agents_fetches_wait_and_fill_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver.AIOKafkaConsumerThread, "_create_worker_consumer",
                        lambda self, transport: _Consumer())
    thread_class = faust_consumer._ConsumerThread
    for name in ("fetch_max_wait_ms", "fetch_min_bytes"):  # class settings, restored after the test
        monkeypatch.setattr(thread_class, name, getattr(thread_class, name))
    faust_consumer.apply(Settings(fetch_max_wait_ms=50, fetch_min_bytes=16384))
    thread: Any = object.__new__(thread_class)
    consumer = thread._create_worker_consumer(None)
    assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (50, 16384)
    faust_consumer.apply(Settings())
    consumer = thread._create_worker_consumer(None)
    assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (20, 1)
