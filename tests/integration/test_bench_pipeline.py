"""`interests bench pipeline` end to end at toy sizes: its output contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_bench_pipeline_writes_its_contract(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    run = subprocess.run(
        [sys.executable, "-m", "streams.cli", "bench", "pipeline", "--item-rates", "200", "0",
         "--text-rates", "0", "--seconds", "2", "--events", "600", "--text-events", "60",
         "--order", "both", "--out", str(out)], capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["broker"] == "kafka"  # the default: the broker users run
    rows = report["rows"]
    assert [(r["mode"], r["order"], r["rate"]) for r in rows] == [
        ("passthrough", "sessions", 200.0), ("passthrough", "sessions", 0.0), ("item", "sessions", 200.0),
        ("item", "sessions", 0.0), ("item", "interleaved", 200.0), ("item", "interleaved", 0.0),
        ("text", "random", 0.0)]
    for r in rows:
        assert {"mode", "order", "rate", "events_per_s", "events_per_worker_core_s", "p50_ms", "p99_ms",
                "rss_mb", "broker_cpu_cores", "broker_rss_mb"} <= set(r)
        assert r["covered"] == r["events"], r  # every event reached an output
        assert r["events_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"] and r["rss_mb"] > 0
        assert (r["events_per_worker_core_s"] or 0) > 0, r  # events per CPU second of the consumer
    assert set(report["item_vs_passthrough_by_order"]) == {"sessions", "interleaved"}
    assert "item events (interleaved) at max rate" in run.stdout
