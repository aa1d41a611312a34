"""The README's main command, as a script runs it: real data, embedded broker, a worker process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_summary(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--limit", "400", "--summary-json", str(out),
         "--report", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["events_in"] == summary["events_ok"] == 400
    assert summary["dlq"] == 0 and summary["items"] == 1682
    assert summary["recommendations_out"] > 0 and summary["users"] > 0
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]
    assert "live top-5" in done.stdout and "metrics: http://" in done.stdout
    # the run's plots, from the worker's metrics sampled while it ran
    assert sorted(Path(p).name for p in summary["report"]) == [
        "latency.png", "online_hr.png", "report.json", "throughput.png"]
    report = json.loads((tmp_path / "report/report.json").read_text())
    assert max(rate for _, rate in report["events_per_s"]) > 0
    [(model, hit_rate)] = report["online_hit_rate_overall"].items()
    assert model.startswith("all-MiniLM-L6-v2@") and 0 <= hit_rate <= 1
