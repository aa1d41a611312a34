"""A worker's /metrics sampled over time, and the series an operator plots from it: throughput,
live HR@k per model, and the end-to-end latency distribution. No Prometheus needed: `interests
report` and the demo sample the worker directly."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.ops.metrics_scrape import Samples, scrape, total


@dataclass(frozen=True)
class Sample:
    t_s: float  # seconds since the recording started
    samples: Samples


@dataclass
class MetricsRecorder:
    """Scrapes `url` every `every_s` seconds on a thread of its own until `stop()`."""

    url: str
    every_s: float = 1.0
    recorded: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="metrics-recorder", daemon=True)

    def start(self) -> MetricsRecorder:
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        """Ends the recording with one last sample: a run shorter than `every_s` is still seen."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample()
        return self.recorded

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.every_s):
                return

    def _sample(self) -> None:
        # the worker is starting, busy past the timeout, or gone: a gap, not an error
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            self.recorded.append(Sample(time.monotonic() - self._started, scrape(self.url)))


def rates(recorded: Sequence[Sample], name: str, **labels: str) -> list[tuple[float, float]]:
    """(t, d total / d t) between consecutive samples: a counter's per-second rate over time."""
    out = []
    for a, b in itertools.pairwise(recorded):
        dt = b.t_s - a.t_s
        if dt > 0:
            out.append((b.t_s, (total(b.samples, name, **labels) - total(a.samples, name, **labels)) / dt))
    return out


def models(recorded: Sequence[Sample]) -> list[str]:
    names = {dict(key).get("model", "") for s in recorded
             for key in s.samples.get("interests_online_events_total", {})}
    return sorted(names)


def hit_rate(recorded: Sequence[Sample], model: str, window_s: float) -> list[tuple[float, float]]:
    """Live HR@k per window: (t, d hits / d events) over consecutive windows of `window_s`;
    windows without an event on a shown user are left out."""
    if not recorded:
        return []
    out = []
    start = recorded[0]
    for s in recorded[1:]:
        if s.t_s - start.t_s < window_s:
            continue
        events = (total(s.samples, "interests_online_events_total", model=model)
                  - total(start.samples, "interests_online_events_total", model=model))
        hits = (total(s.samples, "interests_online_hits_total", model=model)
                - total(start.samples, "interests_online_hits_total", model=model))
        if events > 0:
            out.append((s.t_s, hits / events))
        start = s
    return out


def buckets(samples: Samples, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram, bounds ascending, +Inf last."""
    by_bound: dict[float, float] = {}
    for key, value in samples.get(f"{name}_bucket", {}).items():
        bound = float(dict(key)["le"])
        by_bound[bound] = by_bound.get(bound, 0.0) + value
    return sorted(by_bound.items())


def histogram_quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile: the rank q * N found in its bucket, linearly between the
    bucket's bounds (the first bucket starts at 0); in the +Inf bucket, the last finite bound."""
    if not cumulative or cumulative[-1][1] == 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def summary(recorded: Sequence[Sample], window_s: float) -> dict[str, Any]:
    """What the plots show, as numbers (report.json)."""
    last = recorded[-1].samples if recorded else {}
    latency = buckets(last, "interests_end_to_end_seconds")
    return {
        "seconds": round(recorded[-1].t_s, 1) if recorded else 0.0,
        "events_per_s": [(round(t, 1), round(r, 1)) for t, r in rates(recorded, "interests_events_total")],
        "end_to_end_s": {
            "buckets": [("+Inf" if math.isinf(b) else b, c) for b, c in latency],
            "p50": histogram_quantile(0.5, latency), "p99": histogram_quantile(0.99, latency),
        },
        "online_hit_rate": {m: [(round(t, 1), round(h, 4)) for t, h in hit_rate(recorded, m, window_s)]
                            for m in models(recorded)},
        "online_hit_rate_overall": {
            m: (total(last, "interests_online_hits_total", model=m)
                / max(1.0, total(last, "interests_online_events_total", model=m)))
            for m in models(recorded)},
    }
