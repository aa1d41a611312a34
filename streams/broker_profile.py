"""Workarounds for the embedded Tansu broker, applied only when INTERESTS_BROKER_PROFILE=tansu.

- Tansu answers a fetch only when `fetch_max_wait_ms` runs out, even with data waiting, and
  faust-streaming 0.15.3 hard-codes 1500 ms for its group consumer: we lower it.
- Tansu's ListOffsets(latest) is wrong after multi-record batches, which breaks changelog
  recovery with RocksDB: producer batches of one record avoid it (see `faust_options`).
- JoinGroup takes about session_timeout / 2: a short session timeout.
Real Kafka runs none of this.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

from streams.settings import Settings


class _FetchWaitThread(driver.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 1500

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read when the fetcher starts
        return consumer


def _new_consumer_thread(self: Any) -> driver.AIOKafkaConsumerThread:
    return _FetchWaitThread(self, loop=self.loop, beacon=self.beacon)


def apply(settings: Settings) -> None:
    if settings.broker_profile != "tansu":
        return
    _FetchWaitThread.fetch_max_wait_ms = settings.fetch_max_wait_ms
    driver.Consumer._new_consumer_thread = _new_consumer_thread  # type: ignore[method-assign]


def faust_options(settings: Settings) -> dict[str, Any]:
    if settings.broker_profile != "tansu":
        return {}
    return {
        "producer_max_batch_size": 1,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": min(1.0, settings.session_timeout_s / 3),
    }


def client_options(settings: Settings) -> dict[str, Any]:
    """For aiokafka consumers we create ourselves."""
    if settings.broker_profile != "tansu":
        return {}
    return {"fetch_max_wait_ms": settings.fetch_max_wait_ms}
