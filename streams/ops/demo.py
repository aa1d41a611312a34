"""`interests demo`: embedded broker + worker + a real data set replayed, live top-k on screen."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from streams.admin import ensure_topics
from streams.offline.datasets import Dataset, DocumentSource, load_dataset
from streams.offline.replay import replay
from streams.ops.broker import BrokerKind, free_port, local_broker, wait_for_port
from streams.ops.metrics_recorder import MetricsRecorder
from streams.ops.metrics_scrape import scrape, total
from streams.ops.recommendations_feed import RecommendationsFeed
from streams.ops.worker_process import WorkerProcess
from streams.settings import Settings


@dataclass(frozen=True)
class DemoOptions:
    data: str = "ml-100k"
    documents: DocumentSource = "titles"
    limit: int | None = None
    rate: float | None = None  # events/s; None = 300 live on screen, 0 (unpaced) with a summary
    summary_json: Path | None = None
    show_users: int = 3
    refresh_s: float = 2.0
    timeout_s: float = 600.0
    report_dir: Path | None = None  # plots of the run (latency, throughput, live HR@k)
    broker: BrokerKind = "tansu"  # the embedded broker, or a local Apache Kafka


def percentile_ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values) * 1000.0, q)), 1) if values else None


def show(
    feed: RecommendationsFeed, users: list[str], titles: dict[str, str], history: dict[str, list[str]]
) -> None:
    print(f"\n--- live top-5 ({feed.received} lists received) ---")
    for user in users:
        rec = feed.latest.get(user)
        last = history.get(user, [])[-3:]
        print(f"user {user}: just rated " + "; ".join(titles.get(i, i) for i in last))
        if rec is None:
            print("    (no recommendations yet)")
            continue
        for entry in rec["items"][:5]:
            print(f"    {entry['score']:.3f}  {titles.get(entry['item_id'], entry['item_id'])}")


def run_demo(options: DemoOptions, base: Settings) -> dict[str, Any]:
    started = time.monotonic()
    interactive = options.summary_json is None
    rate = options.rate if options.rate is not None else (300.0 if interactive else 0.0)
    print(f"loading data set {options.data} ...", flush=True)
    dataset: Dataset = load_dataset(options.data, options.documents)
    print(f"  {dataset.documents.line()}")
    events = dataset.interactions[: options.limit] if options.limit else dataset.interactions
    print(f"  {len(dataset.items)} items, {len(events)} events to replay")
    workdir = Path(tempfile.mkdtemp(prefix="interests-demo-"))
    broker = local_broker(options.broker, free_port(), workdir / "broker", workdir / "broker.log")
    metrics_port = base.metrics_port if _port_free(base.metrics_port) else free_port()
    settings = replace(
        base.plaintext(), broker=broker.url, broker_profile=broker.kind,
        app_id=f"interests-demo-{os.getpid()}", data_dir=workdir / "state", metrics_port=metrics_port,
        web_port=free_port(),
    )
    worker = WorkerProcess(settings, workdir / "worker.log")
    stop_panel = threading.Event()
    feed = RecommendationsFeed(settings)
    metrics_url = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
    try:
        broker.start()
        name = "Apache Kafka" if broker.kind == "kafka" else "Tansu, embedded"
        print(f"broker ({name}) on {broker.bootstrap}")
        ensure_topics(settings)
        worker.start()
        print(f"worker started; logs in {worker.log_path}")
        _wait_for_metrics(worker, settings, timeout_s=120)
        print(f"metrics: {metrics_url}")
        recorder = MetricsRecorder(metrics_url).start()
        feed.start()
        # the most active users of the first minutes of the replay: they move early and often
        early = Counter(x.user_id for x in events[: max(1000, len(events) // 20)])
        show_users = [u for u, _ in early.most_common(options.show_users)]
        titles = dataset.titles()
        history: dict[str, list[str]] = {}
        sent = 0

        def on_sent(user_id: str, event_id: str, at: float) -> None:
            nonlocal sent
            feed.expect(user_id, event_id, at)
            sent += 1
            if user_id in show_users:
                history.setdefault(user_id, []).append(events[sent - 1].item_id)

        if interactive:
            threading.Thread(target=_panel, args=(stop_panel, options.refresh_s, feed, show_users,
                                                  titles, history), daemon=True).start()
        print("publishing the catalog; the worker embeds every item once ...", flush=True)
        print(f"replaying {len(events)} events at {f'{rate:.0f}/s' if rate else 'full speed'}; "
              "Ctrl-C stops", flush=True)
        stats = replay(settings, replace(dataset, interactions=events), rate=rate, on_sent=on_sent)
        print(f"catalog embedded in {stats.catalog_wait_s:.1f} s; {stats.events} events sent")
        counts = _wait_processed(metrics_url, stats.events, worker, options.timeout_s)
        _wait_answered(feed, stats.events, timeout_s=30)
        stop_panel.set()
        show(feed, show_users, titles, history)
        summary = {
            "events_in": stats.events,
            "events_ok": int(total(counts, "interests_events_total", outcome="ok")),
            "events_unknown_item": int(total(counts, "interests_events_total", outcome="unknown_item")),
            "dlq": int(total(counts, "interests_dlq_total")),
            "recommendations_out": feed.received,
            "users": len(feed.latest),
            "items": int(total(counts, "interests_items")),
            "latency_ms": {"p50": percentile_ms(feed.latencies_s, 50),
                           "p99": percentile_ms(feed.latencies_s, 99)},
            "rate": rate,
            "wall_s": round(time.monotonic() - started, 1),
        }
        recorded = recorder.stop()
        if options.report_dir is not None:
            from streams.offline.report_plots import write_report

            summary["report"] = [str(p) for p in write_report(recorded, options.report_dir)]
        print(json.dumps(summary, indent=2))
        if options.summary_json:
            options.summary_json.write_text(json.dumps(summary, indent=2) + "\n")
        elif rate == 0:
            print("(latency here includes queueing: every event was sent at once; try --rate 200)")
        return summary
    finally:
        for stop in (stop_panel.set, feed.stop, worker.stop, broker.stop):
            try:
                stop()
            except Exception as exc:  # one failed step must not leave the others running
                print(f"while stopping: {exc!r}", file=sys.stderr)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _panel(stop: threading.Event, every_s: float, feed: RecommendationsFeed, users: list[str],
           titles: dict[str, str], history: dict[str, list[str]]) -> None:
    while not stop.wait(every_s):
        show(feed, users, titles, history)


def _wait_for_metrics(worker: WorkerProcess, settings: Settings, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if not worker.alive():
            raise RuntimeError(f"the worker exited; see {worker.log_path}")
        try:
            wait_for_port(settings.metrics_host, settings.metrics_port, timeout_s=1)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def _wait_processed(url: str, expected: int, worker: WorkerProcess, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        if not worker.alive():
            raise RuntimeError(f"the worker exited; see {worker.log_path}")
        counts = scrape(url)
        done = total(counts, "interests_events_total")
        if done >= expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def _wait_answered(feed: RecommendationsFeed, expected: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(feed.latencies_s) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
