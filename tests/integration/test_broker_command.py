"""`interests broker` serves a real broker on 127.0.0.1 and, on SIGTERM or SIGINT, stops it and
leaves no process behind; Apache Kafka's log dir survives a restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from streams.ops.broker import free_port, wait_for_port
from tests.processes import processes_naming

pytestmark = pytest.mark.integration


def start(kind: str, port: int, data_dir: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "streams.cli", "broker", "--kind", kind, "--port", str(port),
               "--data-dir", str(data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # printed once the broker serves
    assert f"127.0.0.1:{port}" in line, line
    return process


def stop(process: subprocess.Popen[str], signum: int, marker: str) -> None:
    assert [pid for pid in processes_naming(marker) if pid != process.pid], "no broker process found"
    process.send_signal(signum)
    assert process.wait(60) == 0
    deadline = time.monotonic() + 10
    while processes_naming(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_naming(marker) == [], "a broker process outlived the command"


@pytest.mark.parametrize("kind", ["kafka", "tansu"])
def test_the_broker_command_stops_its_broker_on_sigterm_and_sigint(kind: str, tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / f"{kind}-data"
    marker = str(data_dir) if kind == "kafka" else f"127.0.0.1:{port}"  # on the broker's command line
    process = start(kind, port, data_dir)
    producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}")
    if kind == "kafka":  # it refuses to create topics for a client: create one
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
        admin.create_topics({"kept": {"num_partitions": 1, "replication_factor": 1}})
        admin.close()
    producer.send("kept", b"before the restart").get(30)
    producer.close()
    stop(process, signal.SIGTERM, marker)
    if kind != "kafka":
        return
    process = start(kind, port, data_dir)  # the same log dir: the record is still there
    wait_for_port("127.0.0.1", port)
    consumer = KafkaConsumer("kept", bootstrap_servers=f"127.0.0.1:{port}", auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000)
    values = [r.value for r in consumer]
    consumer.close()
    assert values == [b"before the restart"]
    stop(process, signal.SIGINT, marker)
