"""`interests bench soak`: a worker under a steady load for minutes; memory and latency must stay flat.

An embedded broker and a real worker take MovieLens-100k ratings (with a share of free-text
searches, so the encoder and its text cache work too) at a fixed rate. Every window of
`window_s` seconds gives the worker's RSS and the p50/p99 produce -> recommendation latency of
the events covered in it; the least-squares slope of each over time is the verdict. Per-user
state is bounded (history, seen ids), the catalog is fixed and the text cache is an LRU, so any
upward RSS slope beyond noise is a leak.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from streams.bench.pipeline import (
    ProcessClock,
    _measure,
    _user_and_event,
    bench_broker,
    item_events,
    on_own_broker,
    percentile_ms,
    text_events,
)
from streams.offline.datasets import load_dataset
from streams.ops.broker import BrokerKind, wait_for_port
from streams.settings import Settings


def mixed_events(data: Any, count: int, text_share: float, seed: int) -> Iterator[tuple[str, bytes, str]]:
    now_ms = int(time.time() * 1000)
    items = item_events(data, "soak-i", count, now_ms)
    texts = text_events(data, "soak-t", count, now_ms, seed)
    rng = random.Random(seed)
    for _ in range(count):
        yield next(texts) if rng.random() < text_share else next(items)


STEADY_AFTER_S = 120.0  # the soak's first two minutes are start-up: users arrive with no state


def slope_per_min(t_s: list[float], values: list[float]) -> float:
    """Least-squares slope of values over time, per minute (nan with fewer than 3 points)."""
    points = [(t, v) for t, v in zip(t_s, values, strict=True) if np.isfinite(v)]
    if len(points) < 3:
        return float("nan")
    t, v = np.array(points, dtype=np.float64).T  # (S,), (S,)
    return float(np.polyfit(t / 60.0, v, 1)[0])


@dataclass(frozen=True)
class WorkerReading:
    """What a soak reads from the worker's metrics; nan and () while it does not answer."""

    rebalances: float = float("nan")  # the worker's partition assignments so far
    lag: float = float("nan")  # records of the events topic the worker has not read yet
    rocksdb_mb: float = float("nan")  # memory the worker's RocksDB holds, all tables and kinds
    rocksdb_parts: tuple[tuple[str, float], ...] = ()  # ("table/kind", MB) of that
    batch_users: tuple[tuple[float, float], ...] = ()  # (le, batches so far) of `interests_batch_users`
    heap_mb: tuple[tuple[str, float], ...] = ()  # (kind, MB) of `interests_heap_bytes`: in_use, free, mapped


@dataclass(frozen=True)
class Sample:
    """One reading of the processes a soak watches: monotonic time, and for the consumer (the
    worker or the pass-through), the broker and this process: RSS in MB and CPU seconds so far;
    and the worker's own metrics."""

    at: float
    rss_mb: float
    cpu_s: float
    broker_rss_mb: float = float("nan")
    broker_cpu_s: float = float("nan")
    bench_cpu_s: float = float("nan")
    worker: WorkerReading = WorkerReading()


def _sampling(consumer: ProcessClock, broker: ProcessClock, samples: list[Sample], every_s: float,
              stop: threading.Event, metrics_url: str | None = None) -> threading.Thread:
    def sample() -> None:
        while not stop.wait(every_s):
            w = worker_progress(metrics_url) if metrics_url else WorkerReading()
            samples.append(Sample(time.monotonic(), consumer.rss_mb(), consumer.cpu_s(), broker.rss_mb(),
                                  broker.cpu_s(), time.process_time(), w))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    return thread


def worker_progress(metrics_url: str) -> WorkerReading:
    """Partition assignments so far, events-topic records not yet read, MB RocksDB holds (and
    that by "table/kind"), the histogram of users per batch and the C heap by kind, from the
    worker's metrics."""
    from streams.ops.metrics_scrape import scrape, total

    try:
        samples = scrape(metrics_url, timeout_s=2.0)
    except OSError:
        return WorkerReading()
    lag = sum(v for labels, v in samples.get("interests_consumer_lag", {}).items()
              if dict(labels).get("topic", "").endswith("events"))
    rocksdb_mb = total(samples, "interests_rocksdb_bytes") / 2**20
    parts = tuple(sorted((f"{dict(labels).get('table')}/{dict(labels).get('kind')}", round(v / 2**20, 2))
                         for labels, v in samples.get("interests_rocksdb_bytes", {}).items()))
    buckets = sorted((float(dict(labels)["le"]), v) for labels, v in
                     samples.get("interests_batch_users_bucket", {}).items())
    heap = tuple(sorted((dict(labels).get("kind", ""), round(v / 2**20, 2))
                        for labels, v in samples.get("interests_heap_bytes", {}).items()))
    return WorkerReading(total(samples, "interests_rebalances_total"), lag, rocksdb_mb, parts, tuple(buckets),
                         heap)


def largest_batch(first: Sample, last: Sample) -> float:
    """The upper bound of the histogram bucket that holds the largest batch (users) between two
    readings: the smallest `le` whose count grew as much as every bucket's; nan without batches."""
    before = dict(first.worker.batch_users)
    grown = [(le, n - before.get(le, 0.0)) for le, n in last.worker.batch_users]  # (le, batches since)
    if not grown or grown[-1][1] <= 0:
        return float("nan")
    return next(le for le, n in grown if n >= grown[-1][1])


def cores(samples: list[Sample], lo: float, hi: float, cpu: Callable[[Sample], float]) -> float:
    """CPU cores used between the first and last sample inside [lo, hi) (nan with fewer than two)."""
    inside = [x for x in samples if lo <= x.at < hi]
    if len(inside) < 2 or inside[-1].at <= inside[0].at:
        return float("nan")
    return (cpu(inside[-1]) - cpu(inside[0])) / (inside[-1].at - inside[0].at)


def _largest(values: Iterable[float]) -> float:
    """The largest finite value (nan if none: the worker's metrics did not answer)."""
    return max((v for v in values if np.isfinite(v)), default=float("nan"))


def _median(values: list[float]) -> float:
    """The median of a window's readings, to 0.1 (nan if none)."""
    return round(float(np.median(values)), 1) if values else float("nan")


def _heap_median(samples: list[Sample], kind: str) -> float:
    """The median of a window's readings of the worker's C heap of this kind, MB (nan: none)."""
    return _median([mb for x in samples for k, mb in x.worker.heap_mb if k == kind])


def windowed(cov: Any, started: float, samples: list[Sample], window_s: float,
             minutes: float) -> dict[str, Any]:
    """Per window of covered time: events/s, p50/p99 latency, the consumer's median RSS, and the
    cores the consumer, the broker and this load generator used (which of them falls behind when
    latency climbs); and the slopes over the windows in the steady part (the first includes
    start-up, the last the drain)."""
    windows: list[dict[str, Any]] = []
    edges = np.arange(started, max(cov.covered_at, default=started) + window_s, window_s)
    at = np.array(cov.covered_at)  # (E,) monotonic s
    lat = np.array(cov.latencies_s)  # (E,) s
    for lo in edges[:-1]:
        inside = (at >= lo) & (at < lo + window_s)
        inside_samples = [x for x in samples if lo <= x.at < lo + window_s]
        windows.append({
            "t_s": round(float(lo - started), 1),
            "events_per_s": round(float(inside.sum()) / window_s, 1),
            "p50_ms": round(percentile_ms(lat[inside].tolist(), 50), 2),
            "p99_ms": round(percentile_ms(lat[inside].tolist(), 99), 2),
            "rss_mb": _median([x.rss_mb for x in inside_samples]),
            "cpu_cores": round(cores(samples, lo, lo + window_s, lambda x: x.cpu_s), 3),
            "broker_rss_mb": _median([x.broker_rss_mb for x in inside_samples]),
            "broker_cpu_cores": round(cores(samples, lo, lo + window_s, lambda x: x.broker_cpu_s), 3),
            "bench_cpu_cores": round(cores(samples, lo, lo + window_s, lambda x: x.bench_cpu_s), 3),
            "rebalances": _largest(x.worker.rebalances for x in inside_samples),
            "lag": _largest(x.worker.lag for x in inside_samples),
            "rocksdb_mb": _largest(x.worker.rocksdb_mb for x in inside_samples),
            "rocksdb_parts_mb": dict(next((x.worker.rocksdb_parts for x in reversed(inside_samples)
                                           if x.worker.rocksdb_parts), ())),  # the window's last reading
            "largest_batch_users_at_most": (largest_batch(inside_samples[0], inside_samples[-1])
                                            if inside_samples else float("nan")),
            "heap_in_use_mb": _heap_median(inside_samples, "in_use"),
            "heap_free_mb": _heap_median(inside_samples, "free"),
        })
    warm = [w for w in windows[1:] if w["t_s"] + window_s <= minutes * 60]
    times = [w["t_s"] for w in warm]
    # the steady state: every user has a state and the caches have their start-up sizes
    steady = [w for w in warm if w["t_s"] >= STEADY_AFTER_S]
    steady_t = [w["t_s"] for w in steady]
    return {
        "covered": cov.covered, "windows": windows,
        "rss_slope_mb_per_min": round(slope_per_min(times, [w["rss_mb"] for w in warm]), 3),
        "p50_slope_ms_per_min": round(slope_per_min(times, [w["p50_ms"] for w in warm]), 3),
        "p99_slope_ms_per_min": round(slope_per_min(times, [w["p99_ms"] for w in warm]), 3),
        "rss_first_mb": warm[0]["rss_mb"] if warm else None,
        "rss_last_mb": warm[-1]["rss_mb"] if warm else None,
        "broker_rss_slope_mb_per_min": round(slope_per_min(times, [w["broker_rss_mb"] for w in warm]), 3),
        "steady_after_s": STEADY_AFTER_S,
        "rss_slope_steady_mb_per_min": round(slope_per_min(steady_t, [w["rss_mb"] for w in steady]), 3),
        # what is left of that slope once RocksDB's memory (bounded by its budgets) is taken out
        "rss_less_rocksdb_slope_steady_mb_per_min": round(slope_per_min(
            steady_t, [w["rss_mb"] - w["rocksdb_mb"] for w in steady]), 3),
        # the C heap's part of it: memory in use (RocksDB's too), and freed memory kept in holes
        "heap_in_use_slope_steady_mb_per_min": round(slope_per_min(
            steady_t, [w["heap_in_use_mb"] for w in steady]), 3),
        "heap_free_slope_steady_mb_per_min": round(slope_per_min(
            steady_t, [w["heap_free_mb"] for w in steady]), 3),
        "p99_max_after_1_min_ms": _largest(w["p99_ms"] for w in warm if w["t_s"] >= 60),
    }


def run_baseline(s: Settings, data: Any, count: int, minutes: float, rate: float, window_s: float,
                 progress: Any, broker_kind: BrokerKind = "kafka") -> dict[str, Any]:
    """The same rate through a bare aiokafka pass-through on a broker like the worker's (its own,
    started fresh): how much of a latency slope is the broker's (the embedded broker keeps every
    record in memory and slows down as it fills)."""
    with tempfile.TemporaryDirectory() as scratch, bench_broker(broker_kind, scratch) as broker:
        assert broker.process is not None
        return _passthrough_soak(replace(s, broker=broker.url), ProcessClock(broker.process.pid), data, count,
                                 minutes, rate, window_s, progress)


def _passthrough_soak(s: Settings, broker: ProcessClock, data: Any, count: int, minutes: float, rate: float,
                      window_s: float, progress: Any) -> dict[str, Any]:
    import subprocess
    import sys

    from streams.admin import create_topics
    from streams.bench.pipeline import PASS_SINK, PASS_SOURCE

    create_topics(s, [PASS_SOURCE, PASS_SINK])
    copier = subprocess.Popen([sys.executable, "-m", "streams.bench.pipeline", "passthrough", s.bootstrap,
                               PASS_SOURCE, PASS_SINK, f"soak-pass-{time.time_ns()}",
                               str(s.fetch_max_wait_ms)], start_new_session=True)
    samples: list[Sample] = []
    stop = threading.Event()
    try:
        asyncio.run(_measure(s.bootstrap, PASS_SOURCE, PASS_SINK, s.partitions, s.fetch_max_wait_ms,
                             item_events(data, "pass-warm", 1000, 0), 0, 1000, 60.0, _user_and_event))
        progress(f"baseline: a pass-through at {rate:.0f}/s for {minutes:g} min")
        sampler = _sampling(ProcessClock(copier.pid), broker, samples, window_s / 3, stop)
        started = time.monotonic()
        cov = asyncio.run(_measure(s.bootstrap, PASS_SOURCE, PASS_SINK, s.partitions, s.fetch_max_wait_ms,
                                   item_events(data, "pass", count, 0), rate, count, 60.0, _user_and_event))
        stop.set()
        sampler.join()
    finally:
        stop.set()
        copier.kill()
        copier.wait()
    return windowed(cov, started, samples, window_s, minutes)


def run_soak(settings: Settings, minutes: float = 10.0, rate: float = 500.0, text_share: float = 0.05,
             window_s: float = 15.0, dataset: str = "ml-100k", seed: int = 1, baseline: bool = False,
             progress: Any = lambda line: None, broker_kind: BrokerKind = "kafka") -> dict[str, Any]:
    from streams.admin import ensure_topics
    from streams.offline.replay import replay
    from streams.ops.worker_process import WorkerProcess

    data = load_dataset(dataset)
    count = int(minutes * 60 * rate)
    passthrough = (run_baseline(settings, data, count, minutes, rate, window_s, progress, broker_kind)
                   if baseline else None)
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory() as scratch, bench_broker(broker_kind, scratch) as broker:
        s = on_own_broker(settings, broker, scratch, "soak")
        ensure_topics(s)
        worker = WorkerProcess(s, Path(scratch) / "worker.log").start()
        stop = threading.Event()
        try:
            wait_for_port(s.metrics_host, s.metrics_port, timeout_s=180)
            replay(s, replace(data, interactions=[]), wait_catalog=True)
            assert worker.process is not None and broker.process is not None
            sampler = _sampling(ProcessClock(worker.process.pid), ProcessClock(broker.process.pid), samples,
                                window_s / 3, stop, f"http://{s.metrics_host}:{s.metrics_port}/metrics")
            progress(f"soak: {count} events at {rate:.0f}/s for {minutes:g} min")
            started = time.monotonic()
            cov = asyncio.run(_measure(s.bootstrap, s.topic("events"), s.topic("recommendations"),
                                       s.partitions, s.fetch_max_wait_ms,
                                       mixed_events(data, count, text_share, seed), rate, count, 60.0,
                                       _user_and_event))
            stop.set()
            sampler.join()
            if not worker.alive():
                raise RuntimeError(f"the worker died; see {scratch}/worker.log")
        finally:
            stop.set()
            worker.stop()
    return {"minutes": minutes, "rate": rate, "text_share": text_share, "events": count,
            "broker": broker_kind,
            **windowed(cov, started, samples, window_s, minutes), "passthrough": passthrough}


def table(report: dict[str, Any]) -> str:
    lines = [f"{'t s':>7}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'rss MB':>8}{'cores':>7}"
             f"{'broker MB':>10}{'broker cores':>13}{'load cores':>11}{'lag':>8}{'rebal':>6}"
             f"{'rocksdb MB':>11}{'batch users <=':>15}"]
    for w in report["windows"]:
        lines.append(f"{w['t_s']:>7.0f}{w['events_per_s']:>10.0f}{w['p50_ms']:>9.1f}{w['p99_ms']:>9.1f}"
                     f"{w['rss_mb']:>8.0f}{w['cpu_cores']:>7.2f}{w['broker_rss_mb']:>10.0f}"
                     f"{w['broker_cpu_cores']:>13.2f}{w['bench_cpu_cores']:>11.2f}{w['lag']:>8.0f}"
                     f"{w['rebalances']:>6.0f}{w['rocksdb_mb']:>11.1f}"
                     f"{w['largest_batch_users_at_most']:>15.0f}")
    lines.append(f"{report['covered']} of {report['events']} events covered; RSS slope "
                 f"{report['rss_slope_mb_per_min']:+.2f} MB/min ({report['rss_first_mb']} -> "
                 f"{report['rss_last_mb']} MB), p50 slope {report['p50_slope_ms_per_min']:+.1f} ms/min, "
                 f"p99 slope {report['p99_slope_ms_per_min']:+.1f} ms/min")
    lines.append(f"after {report['steady_after_s']:.0f} s: RSS slope "
                 f"{report['rss_slope_steady_mb_per_min']:+.2f} MB/min, less RocksDB "
                 f"{report['rss_less_rocksdb_slope_steady_mb_per_min']:+.2f} MB/min; C heap in use "
                 f"{report['heap_in_use_slope_steady_mb_per_min']:+.2f} MB/min, free in it "
                 f"{report['heap_free_slope_steady_mb_per_min']:+.2f} MB/min; "
                 f"p99 at most {report['p99_max_after_1_min_ms']:.0f} ms after the first minute")
    base = report.get("passthrough")
    if base:
        lines.append(f"the bare pass-through at the same rate on a fresh broker of its own: p50 slope "
                     f"{base['p50_slope_ms_per_min']:+.1f} ms/min, p99 slope "
                     f"{base['p99_slope_ms_per_min']:+.1f} ms/min")
    return "\n".join(lines)
