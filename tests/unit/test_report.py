"""The series and plots `interests report` and the demo derive from sampled /metrics."""

from __future__ import annotations

import http.server
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.offline.report_plots import write_report
from streams.ops.metrics_recorder import (
    MetricsRecorder,
    Sample,
    buckets,
    histogram_quantile,
    hit_rate,
    models,
    rates,
)
from streams.ops.metrics_scrape import Samples, total

M = "enc@1+hybrid"


def sample(t: float, events: float, hits: float, shown: float, latency: dict[float, float]) -> Sample:
    samples: Samples = {
        "interests_events_total": {(("outcome", "ok"), ("type", "click")): events * 0.9,
                                   (("outcome", "dlq"), ("type", "unknown")): events * 0.1},
        "interests_recommendations_total": {(): events},
        "interests_online_events_total": {(("model", M),): shown},
        "interests_online_hits_total": {(("model", M),): hits},
        "interests_end_to_end_seconds_bucket": {
            (("le", "+Inf" if math.isinf(b) else str(b)),): c for b, c in latency.items()},
    }
    return Sample(t, samples)


LATENCY = {0.05: 50.0, 0.1: 90.0, 0.5: 100.0, math.inf: 100.0}
RECORDED = [sample(t, events=100.0 * t, hits=2.0 * t, shown=10.0 * t, latency=LATENCY) for t in range(31)]


def test_rates_are_per_second_between_samples() -> None:
    assert rates(RECORDED, "interests_events_total") == [(float(t), 100.0) for t in range(1, 31)]
    assert rates(RECORDED, "interests_events_total", outcome="ok")[0] == (1.0, pytest.approx(90.0))


def test_hit_rate_per_window_of_each_model() -> None:
    assert models(RECORDED) == [M]
    assert hit_rate(RECORDED, M, window_s=10) == [(10.0, 0.2), (20.0, 0.2), (30.0, 0.2)]
    assert hit_rate(RECORDED, "other", window_s=10) == []  # no event on a shown user: no point


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    cumulative = buckets(RECORDED[-1].samples, "interests_end_to_end_seconds")
    assert cumulative == [(0.05, 50.0), (0.1, 90.0), (0.5, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, cumulative) == pytest.approx(0.05)
    assert histogram_quantile(0.25, cumulative) == pytest.approx(0.025)  # first bucket from 0
    assert histogram_quantile(0.7, cumulative) == pytest.approx(0.075)  # halfway into (0.05, 0.1]
    assert histogram_quantile(0.99, cumulative) == pytest.approx(0.1 + 0.4 * 0.9)
    assert histogram_quantile(0.99, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 10.0)]) == 0.1  # in +Inf: last bound


def test_report_writes_three_plots_and_the_numbers(tmp_path: Path) -> None:
    paths = write_report(RECORDED, tmp_path)
    assert [p.name for p in paths] == ["latency.png", "throughput.png", "online_hr.png", "report.json"]
    for png in paths[:3]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    report = json.loads(paths[3].read_text())
    assert report["online_hit_rate_overall"] == {M: 0.2}
    assert report["end_to_end_s"]["p50"] == pytest.approx(0.05)


class _Metrics(http.server.BaseHTTPRequestHandler):
    """/metrics with `events` as its counter; a garbled body while `garbled` is set."""

    events = 0.0
    garbled = False

    def do_GET(self) -> None:
        counter = f"interests_events_total{{outcome=\"ok\"}} {'oops' if self.garbled else self.events}\n"
        body = f"# TYPE interests_events_total counter\n{counter}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def metrics_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        _Metrics.events, _Metrics.garbled = 0.0, False


def test_a_recording_survives_a_garbled_scrape_and_ends_with_the_last_state(metrics_url: str) -> None:
    # a run shorter than the sampling period: the work is seen by the sample taken at stop()
    _Metrics.garbled = True
    recorder = MetricsRecorder(metrics_url, every_s=60).start()
    time.sleep(0.2)  # the first scrape hits the garbled body: a gap, the thread goes on
    _Metrics.garbled, _Metrics.events = False, 400.0
    recorded = recorder.stop()
    assert recorded, "nothing recorded"
    assert total(recorded[-1].samples, "interests_events_total") == 400.0
