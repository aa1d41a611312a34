"""`interests bench` killed with SIGTERM stops the broker and the workers it started (each in a
session of its own, out of the signal's reach) before it exits."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import alive, descendants

pytestmark = pytest.mark.integration


def test_a_killed_soak_leaves_no_broker_or_worker_behind(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "streams.cli", "bench", "soak", "--broker", "tansu", "--minutes", "2",
               "--rate", "50", "--out", str(tmp_path / "soak.json")]
    bench = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    started: dict[int, str] = {}
    while time.monotonic() < deadline and bench.poll() is None:
        started = descendants(bench.pid)
        if any("streams.cli worker" in c for c in started.values()):
            break
        time.sleep(0.5)
    assert any("streams.cli worker" in c for c in started.values()), f"no worker started: {started}"
    time.sleep(3)  # the worker under load, the broker serving it
    started = descendants(bench.pid)
    bench.send_signal(signal.SIGTERM)
    _, err = bench.communicate(timeout=90)
    assert bench.returncode == 130, err[-2000:]
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {pid: c for pid, c in started.items() if alive(pid)}
    assert left == {}, f"outlived the bench: {left}"
    assert not (tmp_path / "soak.json").exists()  # stopped, not finished
