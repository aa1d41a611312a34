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
         "--out", str(out)], capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["broker"] == "kafka"  # the default: the broker users run
    rows = report["rows"]
    assert [(r["mode"], r["rate"]) for r in rows] == [
        ("passthrough", 200.0), ("passthrough", 0.0), ("item", 200.0), ("item", 0.0), ("text", 0.0)]
    for r in rows:
        assert {"mode", "rate", "events_per_s", "p50_ms", "p99_ms", "rss_mb", "broker_cpu_cores",
                "broker_rss_mb"} <= set(r)
        assert r["covered"] == r["events"], r  # every event reached an output
        assert r["events_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"] and r["rss_mb"] > 0
    assert "item events at max rate" in run.stdout
