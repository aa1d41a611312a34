"""`interests bench profile`: where a worker's time goes while it absorbs free-text searches.

An embedded broker and a real worker; MovieLens-100k's catalog is embedded first, then searches of
three random title words (so the text cache rarely helps) are produced at `rate` per second while
py-spy samples the worker's threads. Each sampled stack is put in one bucket, first match wins;
the shares are of all non-idle samples (the encoder thread and the event loop together).
"""

from __future__ import annotations

import collections
import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from streams.admin import ensure_topics
from streams.broker import EmbeddedBroker, free_port, wait_for_port
from streams.datasets import load_dataset
from streams.replay import replay
from streams.settings import Settings
from streams.worker_process import WorkerProcess

BUCKETS = (  # (bucket, substrings of a stack that put it there)
    ("model (ONNX Runtime / torch forward)", ("onnxruntime_inference_collection", "torch/nn/modules")),
    ("tokenize", ("tokenization", "tokenizers")),
    ("encoder glue (cache, batching, copies)", ("text_cache.py", "batching.py", "onnx_backend.py",
                                                "transformer.py")),
    ("hybrid scoring", ("scoring.py", "serving.py", "hybrid.py", "neighbours.py", "factors.py")),
    ("interest state update", ("decay.py", "cf/batch.py", "state.py")),
    ("records (parse, serialise)", ("records.py",)),
    ("tables (RocksDB, changelog)", ("rocksdict", "stores/rocksdb", "faust/tables")),
    ("kafka client", ("aiokafka", "faust/transport", "kafka/")),
    ("faust streams", ("faust/", "mode/")),
    ("event loop", ("asyncio",)),
)


def bucket(stack: str) -> str:
    for name, needles in BUCKETS:
        if any(n in stack for n in needles):
            return name
    return "other"


def shares(raw: str) -> tuple[int, dict[str, float]]:
    """py-spy's raw output (`frame;frame;... count` per line) -> (samples, bucket -> share)."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[bucket(stack)] += int(n)
    total = sum(counts.values())
    return total, {k: round(v / max(total, 1), 4) for k, v in counts.most_common()}


def run_profile(settings: Settings, seconds: float = 25.0, rate: float = 400.0, dataset: str = "ml-100k",
                seed: int = 1) -> dict[str, Any]:
    data = load_dataset(dataset)
    words = sorted({w.strip("().,:").lower() for i in data.items for w in i.title.split() if len(w) > 3})
    rng = random.Random(seed)
    spy = Path(sys.executable).parent / "py-spy"
    with tempfile.TemporaryDirectory() as scratch, EmbeddedBroker(
            port=free_port(), log_file=Path(scratch) / "broker.log") as broker:
        s = replace(settings, broker=broker.url, broker_profile="tansu", app_id=f"profile-{time.time_ns()}",
                    metrics_port=free_port(), web_port=free_port(), data_dir=Path(scratch) / "data")
        ensure_topics(s)
        worker = WorkerProcess(s, Path(scratch) / "worker.log").start()
        try:
            wait_for_port(s.metrics_host, s.metrics_port, timeout_s=180)
            replay(s, replace(data, interactions=data.interactions[:200]), wait_catalog=True)
            assert worker.process is not None
            out = Path(scratch) / "raw.txt"
            sampler = subprocess.Popen([str(spy), "record", "--pid", str(worker.process.pid), "--format",
                                        "raw", "-o", str(out), "--duration", str(int(seconds)), "--rate",
                                        "100", "--nonblocking"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            producer = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=5)
            started, sent = time.monotonic(), 0
            while time.monotonic() - started < seconds:
                due = int((time.monotonic() - started) * rate)
                for _ in range(due - sent):
                    user = f"searcher-{rng.randrange(2000)}"
                    producer.send(s.topic("events"), key=user.encode(), value=json.dumps(
                        {"event_id": f"q{sent}", "user_id": user, "type": "search",
                         "text": " ".join(rng.sample(words, 3)), "ts": 1_000_000 + sent}).encode())
                    sent += 1
                time.sleep(0.01)
            producer.flush()
            producer.close()
            sampler.wait()
            samples, by_bucket = shares(out.read_text())
        finally:
            worker.stop()
    return {"seconds": seconds, "rate": rate, "searches": sent, "backend": settings.encoder_backend,
            "samples": samples, "shares": by_bucket}


def table(report: dict[str, Any]) -> str:
    lines = [f"worker profile: {report['searches']} searches in {report['seconds']:.0f} s "
             f"({report['backend']}), {report['samples']} py-spy samples"]
    lines += [f"  {name:<42}{100 * share:6.1f}%" for name, share in report["shares"].items()]
    return "\n".join(lines)
