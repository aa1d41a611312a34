"""Read the recommendations topic: latest list per user, and per-event end-to-end latency."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from typing import Any

from streams.ops.topic_reader import read_from_beginning
from streams.settings import Settings


class RecommendationsFeed:
    """A background reader. Each list names the event that triggered it; every event of that user
    sent up to and including it is answered by it, which gives each event's latency."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.latest: dict[str, dict[str, Any]] = {}
        self.received = 0
        self.latencies_s: list[float] = []
        self._pending: dict[str, deque[tuple[str, float]]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recommendations-feed", daemon=True)

    def expect(self, user_id: str, event_id: str, sent_at: float) -> None:
        with self._lock:
            self._pending[user_id].append((event_id, sent_at))

    def start(self) -> RecommendationsFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        consumer = read_from_beginning(self.settings, "recommendations", fetch_max_wait_ms=20,
                                       consumer_timeout_ms=200)
        try:
            while not self._stop.is_set():
                for record in consumer:
                    if record.value is not None:  # a tombstone: the user was erased
                        self._on_record(json.loads(record.value), time.time())
                    if self._stop.is_set():
                        break
        finally:
            consumer.close()

    def _on_record(self, rec: dict[str, Any], now: float) -> None:
        with self._lock:
            self.received += 1
            self.latest[rec["user_id"]] = rec
            pending = self._pending.get(rec["user_id"])
            while pending:
                event_id, sent_at = pending.popleft()
                self.latencies_s.append(now - sent_at)
                if event_id == rec["event_id"]:
                    break
