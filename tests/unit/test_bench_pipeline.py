"""The pipeline benchmark's bookkeeping: which output covers which events, and its percentiles."""

from __future__ import annotations

import math
import os
import time

import pytest

from streams.bench.pipeline import (
    WORKER_TOTALS,
    Coverage,
    ProcessClock,
    batch_stats,
    item_vs_passthrough,
    percentile_ms,
    settle,
    worst_by_second,
)
from streams.bench.soak import Sample, WorkerReading, cores, largest_batch, slope_per_min, windowed


def test_an_output_covers_its_event_and_every_earlier_one_of_that_user() -> None:
    c = Coverage()
    c.on_sent("a", "a1", 0.0)
    c.on_sent("b", "b1", 0.1)
    c.on_sent("a", "a2", 0.2)
    c.on_sent("a", "a3", 0.3)
    c.on_output("a", "a2", 1.0)  # a list after a2: a1 and a2 are served
    assert sorted(c.latencies_s) == pytest.approx([0.8, 1.0])
    c.on_output("a", "a1", 1.1)  # an older list arriving late: nothing new
    c.on_output("x", "x9", 1.1)  # another phase's user
    assert c.covered == 2
    c.on_output("b", "b1", 1.5)
    c.on_output("a", "a3", 2.0)
    assert c.covered == 4 and c.last_covered == 2.0 and c.first_sent == 0.0
    assert c.covered_at == [1.0, 1.0, 1.5, 2.0]


def test_percentiles_are_nearest_rank_in_ms() -> None:
    values = [n / 1000 for n in range(1, 101)]  # 1..100 ms
    assert percentile_ms(values, 50) == pytest.approx(50.0)
    assert percentile_ms(values, 99) == pytest.approx(99.0)
    assert math.isnan(percentile_ms([], 50))


def test_the_soak_slope_is_per_minute_and_needs_three_points() -> None:
    assert slope_per_min([0, 60, 120, 180], [100, 102, 104, 106]) == pytest.approx(2.0)
    assert slope_per_min([0, 30, 60], [5, 5, 5]) == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(slope_per_min([0, 60], [1, 2]))


def test_the_ratio_to_the_pass_through_is_only_of_max_rate_phases() -> None:
    def row(mode: str, rate: float, per_s: float) -> dict[str, object]:
        return {"mode": mode, "rate": rate, "events_per_s": per_s}

    fixed = [row("passthrough", 1000.0, 999.0), row("item", 1000.0, 998.0)]
    assert item_vs_passthrough(fixed) is None  # what was offered, not what either can do
    both = [*fixed, row("passthrough", 0, 20_000.0), row("item", 0, 1_500.0), row("text", 0, 400.0)]
    assert item_vs_passthrough(both) == 0.075


def test_the_worst_latency_of_each_second_shows_when_the_spikes_came() -> None:
    latencies = [0.05, 0.9, 0.02, 0.3]
    covered_at = [100.2, 100.9, 102.5, 102.6]  # seconds 0, 0, 2, 2 after the first send at 100
    assert worst_by_second(latencies, covered_at, 100.0) == [900.0, 0.0, 300.0]
    assert worst_by_second([], [], 100.0) == []


def test_each_soak_window_has_the_cores_of_the_worker_the_broker_and_the_load() -> None:
    """Samples every 5 s over two 15 s windows; the broker's CPU doubles in the second."""
    samples = [Sample(at=t, rss_mb=500 + t, cpu_s=0.5 * t, broker_rss_mb=40 + 2 * t,
                      broker_cpu_s=0.25 * t if t < 15 else 3.75 + 0.5 * (t - 15), bench_cpu_s=0.1 * t,
                      worker=WorkerReading(rebalances=1, lag=t)) for t in range(0, 30, 5)]
    assert cores(samples, 0, 15, lambda x: x.cpu_s) == pytest.approx(0.5)
    assert math.isnan(cores(samples, 0, 4, lambda x: x.cpu_s))  # one sample: no interval

    covered = Coverage(latencies_s=[0.05, 0.07, 0.2, 0.3], covered_at=[1.0, 2.0, 16.0, 17.0])  # 2 a window
    report = windowed(covered, 0.0, samples, 15.0, minutes=1.0)
    first, second = report["windows"]
    assert (first["cpu_cores"], first["broker_cpu_cores"], first["bench_cpu_cores"]) == (0.5, 0.25, 0.1)
    assert second["broker_cpu_cores"] == 0.5 and second["broker_rss_mb"] == 80.0
    assert (second["lag"], second["rebalances"]) == (25, 1)


def test_batch_stats_are_per_batch_differences_of_the_workers_counters() -> None:
    before = dict.fromkeys(WORKER_TOTALS, 0.0) | {"interests_batch_seconds_count": 10.0,
                                                   "interests_events_total": 500.0}
    after = {"interests_batch_seconds_count": 30.0, "interests_batch_seconds_sum": 1.0,
             "interests_events_total": 2500.0, "interests_recommendations_total": 100.0,
             "interests_neighbours_flush_seconds_sum": 3.5, "interests_batch_store_seconds_sum": 0.4}
    stats = batch_stats(before, after)
    assert stats == {"batches": 20, "events_per_batch": 100.0, "lists_per_batch": 5.0, "batch_ms": 50.0,
                     "store_ms": 20.0, "cooc_flush_s": 3.5}
    assert batch_stats(after, after)["events_per_batch"] == 0.0  # no batch in the phase


def test_the_steady_slopes_leave_out_the_start_and_rocksdb_filling_its_budget() -> None:
    """Five minutes in 15 s windows: the RSS climbs 30 MB/min for two minutes, then only RocksDB's
    memory grows (6 MB/min) and the rest stays flat; one p99 spike in the first minute."""
    def rss(t: float) -> float:
        return 200 + min(t, 120) / 2 + max(t - 120, 0) / 10

    samples = [Sample(at=t, rss_mb=rss(t), cpu_s=0.5 * t,
                      worker=WorkerReading(rocksdb_mb=max(t - 120, 0) / 10,
                                           heap_mb=(("free", 30 + t / 20), ("in_use", 150.0))))
               for t in range(0, 300, 5)]
    at = [t + 0.5 for t in range(0, 300)]  # one event covered a second
    latencies = [0.5 if t == 30 else 0.02 + 0.0001 * (t % 7) for t in range(0, 300)]
    report = windowed(Coverage(latencies_s=latencies, covered_at=at), 0.0, samples, 15.0, minutes=5.0)
    assert report["rss_slope_mb_per_min"] > 10  # the whole run's slope carries the start
    assert report["rss_slope_steady_mb_per_min"] == pytest.approx(6.0, abs=0.01)
    assert report["rss_less_rocksdb_slope_steady_mb_per_min"] == pytest.approx(0.0, abs=0.01)
    assert report["heap_free_slope_steady_mb_per_min"] == pytest.approx(3.0, abs=0.01)  # holes kept
    assert report["heap_in_use_slope_steady_mb_per_min"] == pytest.approx(0.0, abs=0.01)
    assert report["windows"][0]["heap_free_mb"] == 30.2  # the median of 0, 5 and 10 s
    assert report["p99_max_after_1_min_ms"] < 30  # the spike at 30 s is before it


def test_a_process_clock_counts_cpu_time_finer_than_the_kernels_10_ms_ticks() -> None:
    clock = ProcessClock(os.getpid())
    before, spent_from = clock.cpu_s(), time.process_time()
    while time.process_time() - spent_from < 0.002:  # 2 ms of CPU: a tick counter mostly sees 0
        pass
    spent = clock.cpu_s() - before
    assert 0.002 <= spent < 0.008  # ticks would read 0 or 10 ms


def test_a_phase_starts_once_the_workers_are_quiet_or_the_wait_runs_out() -> None:
    busy_then_quiet = iter([0.0, 0.5, 0.5, 1.0, 1.0, 1.0005])  # CPU s: busy, busy, then idle
    assert settle(lambda: next(busy_then_quiet), quiet_cores=0.1, every_s=0.01) < 1
    assert next(busy_then_quiet, None) is None  # it read until the quiet interval
    always_busy = iter(float(n) for n in range(10_000))
    assert settle(lambda: next(always_busy), every_s=0.01, timeout_s=0.05) >= 0.0
    assert next(always_busy) < 20  # gave up after about five intervals


def test_a_window_names_the_bucket_of_its_largest_batch() -> None:
    """Histogram readings (le, batches so far): between the two, 3 batches of at most 8 users and
    one of 65-128; before them only small ones."""
    first = Sample(at=0.0, rss_mb=1.0, cpu_s=0.0,
                   worker=WorkerReading(batch_users=((8.0, 10.0), (128.0, 10.0), (math.inf, 10.0))))
    last = Sample(at=15.0, rss_mb=1.0, cpu_s=0.0,
                  worker=WorkerReading(batch_users=((8.0, 13.0), (128.0, 14.0), (math.inf, 14.0))))
    assert largest_batch(first, last) == 128.0
    assert math.isnan(largest_batch(last, last))  # no batch in between
