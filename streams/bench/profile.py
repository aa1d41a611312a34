"""`interests bench profile`: where a worker's time goes while it absorbs events.

An embedded broker and a real worker; MovieLens-100k's catalog is embedded first, then searches of
three random title words (so the text cache rarely helps), or with `--mode item` MovieLens ratings,
are produced at `rate` per second, with wall-clock event times, while py-spy samples the worker's
threads. Each sampled stack is put in one bucket, first match wins;
the shares are of all non-idle samples (the encoder thread and the event loop together).
"""

from __future__ import annotations

import collections
import itertools
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from streams.admin import ensure_topics
from streams.connection import client_options
from streams.offline.datasets import load_dataset
from streams.offline.replay import replay
from streams.ops.broker import BrokerKind, wait_for_port
from streams.ops.worker_process import WorkerProcess
from streams.settings import Settings

EVENT_LOOP = "event loop"
BUCKETS = (  # (bucket, substrings of a stack that put it there)
    ("model (ONNX Runtime / torch forward)", ("onnxruntime_inference_collection", "torch/nn/modules")),
    ("tokenize", ("tokenization", "tokenizers")),
    ("encoder glue (cache, batching, copies)", ("text_cache.py", "batching.py", "onnx_backend.py",
                                                "transformer.py")),
    ("hybrid scoring", ("scoring.py", "serving.py", "hybrid.py", "neighbours.py", "factors.py")),
    ("interest state update", ("decay.py", "cf/batch.py", "state.py")),
    ("records (parse, serialise)", ("records.py",)),
    ("tables (RocksDB, changelog)", ("rocksdict", "stores/rocksdb", "faust/tables")),
    ("Kafka client and Faust's transport (fetch, produce)", ("aiokafka", "faust/transport", "kafka/")),
    # the stages' own lines: every agent's stack passes through faust/agents, so before Faust
    ("stage glue (agents, replicas, guards)", ("streams/interest_agent.py", "streams/cooccurrence_agent.py",
                                               "streams/global_replica.py", "streams/offset_guard.py",
                                               "streams/publisher.py", "streams/event_context.py")),
    ("faust streams", ("faust/", "mode/")),
    (EVENT_LOOP, ("asyncio",)),
)


IDLE = "waiting in select (idle or I/O)"
# uvloop (the worker's loop) runs in C: its own work, polling, socket I/O, dispatching callbacks,
# is sampled as the Python frame that started the loop, mode's worker in the main thread and
# Faust's consumer thread, each calling run_until_complete. py-spy leaves sleeping threads out, so
# these samples are the loop at work: at 300 item events/s the main thread was sampled in 45% of
# the ticks (11% at its runner), and in a soak at that rate it took 0.42 of a core by /proc.
LOOP_RUNNERS = ("Worker.execute_from_commandline (", "ServiceThread._start_thread (")


def bucket(stack: str) -> str:
    """Every stack of the worker passes through mode/ (its service runner), so a stack whose
    innermost frame is the event loop's select is waiting, and one whose innermost frame is a
    loop's runner is the loop's own C code, not Faust at work."""
    innermost = stack.rsplit(";", 1)[-1]
    if "selectors.py" in innermost:
        return IDLE
    if innermost.startswith(LOOP_RUNNERS):
        return EVENT_LOOP
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


def leaf_functions(raw: str, top: int = 25) -> list[tuple[str, float]]:
    """The functions the samples were in (each stack's innermost frame), largest share first."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[stack.rsplit(";", 1)[-1]] += int(n)
    total = max(sum(counts.values()), 1)
    return [(frame, round(n / total, 4)) for frame, n in counts.most_common(top)]


def run_profile(settings: Settings, seconds: float = 25.0, rate: float = 400.0, dataset: str = "ml-100k",
                seed: int = 1, mode: str = "text", raw_out: Path | None = None,
                order: str = "sessions", broker_kind: BrokerKind = "kafka") -> dict[str, Any]:
    """`mode` "text": searches; "item": MovieLens ratings (catalog vectors, no model call), in
    `order` (`streams.bench.pipeline.item_events`). `raw_out`: where to keep py-spy's raw stacks
    (for a flame graph)."""
    from streams.bench.pipeline import bench_broker, item_events, on_own_broker, text_events

    data = load_dataset(dataset)
    spy = Path(sys.executable).parent / "py-spy"
    with tempfile.TemporaryDirectory() as scratch, bench_broker(broker_kind, scratch) as broker:
        s = on_own_broker(settings, broker, scratch, "profile")
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
            producer = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=5, **client_options(s))
            count, now_ms = int(seconds * rate) + 1, int(time.time() * 1000)  # wall-clock event times
            events = (item_events(data, "p", count, now_ms, order) if mode == "item"
                      else text_events(data, "p", count, now_ms, seed))
            started, sent = time.monotonic(), 0
            while time.monotonic() - started < seconds:
                due = min(int((time.monotonic() - started) * rate), count)
                for user, value, _ in itertools.islice(events, due - sent):
                    producer.send(s.topic("events"), key=user.encode(), value=value)
                    sent += 1
                time.sleep(0.01)
            producer.flush()
            producer.close()
            sampler.wait()
            raw = out.read_text()
            if raw_out is not None:
                raw_out.write_text(raw)
            samples, by_bucket = shares(raw)
            leaves = leaf_functions(raw)
        finally:
            worker.stop()
    return {"seconds": seconds, "rate": rate, "mode": mode, "order": order, "events": sent,
            "broker": broker_kind,
            "backend": settings.encoder_backend, "samples": samples, "shares": by_bucket,
            "leaf_functions": leaves}


def table(report: dict[str, Any]) -> str:
    kind = "searches" if report["mode"] == "text" else "item events"
    lines = [f"worker profile: {report['events']} {kind} in {report['seconds']:.0f} s "
             f"({report['backend']}), {report['samples']} py-spy samples"]
    lines += [f"  {name:<42}{100 * share:6.1f}%" for name, share in report["shares"].items()]
    return "\n".join(lines)
