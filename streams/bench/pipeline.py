"""`interests bench pipeline`: events/s absorbed and produce -> recommendation latency, end to end.

One embedded broker; in the same run, side by side:
- `passthrough`: a bare aiokafka consumer -> producer process (no parsing, no state, no scoring), the
  ceiling any worker on this broker and machine can reach;
- `item`: a real worker fed MovieLens-100k rating events (item vectors come from the catalog, no
  model call);
- `text`: the same worker fed free-text searches of three random title words (the model runs).

Each (mode, rate) phase produces its events at `rate` per second (0 = as fast as the producer
goes, the worker absorbs the backlog) and reads the output topic. A recommendation for user u that
names event e covers e and every earlier event of u (one list per user per batch), so each event's
latency is (first output covering it, received) - (sent), both on this machine's monotonic clock.
Throughput is events / (last covered - first sent). CPU and RSS are the consuming process's;
`events_per_worker_core_s` is events covered per CPU second of the consuming processes (the
workers, or the pass-through copier), the capacity of one core at that load. Item phases run in
each replay order asked for (`order` on every row: `sessions`, `interleaved`; the pass-through
copies events in time order, text phases draw users at random). Before each worker phase the
bench waits, 30 s at most, until the workers use under 0.1 of a core (`settled_s`), so no phase is
charged with what the one before left (its co-occurrence flush, compactions).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from streams.offline.datasets import Dataset, interleaved, load_dataset
from streams.ops.broker import BrokerKind, LocalBroker, free_port, local_broker, wait_for_port
from streams.records import dumps
from streams.settings import Settings

PASS_SOURCE, PASS_SINK = "bench.passthrough.in", "bench.passthrough.out"
Progress = Callable[[str], None]


@dataclass
class Coverage:
    """Events sent per user, in order; an output naming event e of user u covers e and every
    earlier event of u still pending."""

    pending: dict[str, collections.deque[tuple[str, float]]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque))
    latencies_s: list[float] = field(default_factory=list)
    covered_at: list[float] = field(default_factory=list)  # monotonic time each latency was seen
    first_sent: float = 0.0
    last_covered: float = 0.0
    sent: int = 0

    def on_sent(self, user: str, event_id: str, at: float) -> None:
        if not self.sent:
            self.first_sent = at
        self.pending[user].append((event_id, at))
        self.sent += 1

    def on_output(self, user: str, event_id: str, at: float) -> None:
        queue = self.pending.get(user)
        if not queue or all(e != event_id for e, _ in queue):
            return  # another phase's, or already covered by a later list
        while queue:
            e, sent_at = queue.popleft()
            self.latencies_s.append(at - sent_at)
            self.covered_at.append(at)
            if e == event_id:
                break
        self.last_covered = at

    @property
    def covered(self) -> int:
        return len(self.latencies_s)


def bench_broker(kind: BrokerKind, scratch: str) -> LocalBroker:
    """A benchmark's own broker, started fresh, its log dir and log in `scratch`."""
    return local_broker(kind, free_port(), Path(scratch) / "broker", Path(scratch) / "broker.log")


def on_own_broker(settings: Settings, broker: LocalBroker, scratch: str, name: str) -> Settings:
    """A benchmark's settings: its own broker (with that broker's profile, in plaintext whatever
    the environment says of a secured cluster), a fresh consumer group, free ports, state in
    `scratch`."""
    return replace(settings.plaintext(), broker=broker.url, broker_profile=broker.kind,
                   app_id=f"{name}-{time.time_ns()}", metrics_port=free_port(), web_port=free_port(),
                   data_dir=Path(scratch) / "data")


def percentile_ms(values: list[float], q: float) -> float:
    """Nearest-rank percentile of seconds, in ms."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _cpu_clock(pid: int) -> int:
    """The kernel's CPU-time clock of process `pid` (all its threads, those gone included), read in
    ns by `time.clock_gettime`."""
    clock = ctypes.c_int()
    error = ctypes.CDLL(None).clock_getcpuclockid(pid, ctypes.byref(clock))
    if error:
        raise OSError(error, f"no CPU-time clock for process {pid}: {os.strerror(error)}")
    return clock.value


class ProcessClock:
    """CPU seconds and resident memory of some processes together (Linux). CPU time comes from each
    process's CPU-time clock (ns): /proc's utime + stime count 10 ms ticks, coarser than a short
    phase (600 events copied at max rate take about one tick)."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.clocks = [_cpu_clock(pid) for pid in pids]

    def cpu_s(self) -> float:
        return sum(time.clock_gettime(clock) for clock in self.clocks)

    def rss_mb(self) -> float:
        total_kb = 0
        for pid in self.pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        return total_kb / 1024


def item_events(data: Dataset, run: str, count: int, now_ms: int,
                order: str = "sessions") -> Iterator[tuple[str, bytes, str]]:
    """(user, value, event id): MovieLens ratings in time order (users' sessions one after
    another), or `interleaved` round-robin over users (many users active at once), stamped with
    wall time (so the worker's time bounds and decay see live events), cycling if needed."""
    xs = data.interactions if order == "sessions" else interleaved(data.interactions, lambda x: x.user_id)
    for n in range(count):
        x = xs[n % len(xs)]
        event_id = f"{run}-{n}"
        yield x.user_id, dumps({"event_id": event_id, "user_id": x.user_id, "type": x.type,
                                "item_id": x.item_id, "rating": x.rating, "ts": now_ms + n}), event_id


def text_events(data: Dataset, run: str, count: int, now_ms: int,
                seed: int) -> Iterator[tuple[str, bytes, str]]:
    """Searches of three random title words by MovieLens users: the text cache rarely helps."""
    words = sorted({w.strip("().,:'").lower() for i in data.items for w in i.title.split() if len(w) > 3})
    users = sorted({x.user_id for x in data.interactions})
    rng = random.Random(seed)
    for n in range(count):
        user, event_id = rng.choice(users), f"{run}-{n}"
        yield user, dumps({"event_id": event_id, "user_id": user, "type": "search",
                           "text": " ".join(rng.sample(words, 3)), "ts": now_ms + n}), event_id


async def _produce(bootstrap: str, topic: str, events: Iterator[tuple[str, bytes, str]], rate: float,
                   coverage: Coverage) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks=1)
    await producer.start()
    try:
        started = time.monotonic()
        for n, (user, value, event_id) in enumerate(events):
            if rate > 0:
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            coverage.on_sent(user, event_id, time.monotonic())
            await producer.send(topic, value=value, key=user.encode())  # queued, not awaited to the broker
            if n % 2000 == 1999:
                await asyncio.sleep(0)  # let the reader run between bursts
        await producer.flush()
    finally:
        await producer.stop()


async def _measure(bootstrap: str, source: str, sink: str, partitions: int, fetch_wait_ms: int,
                   events: Iterator[tuple[str, bytes, str]], rate: float, expected: int,
                   drain_s: float, decode: Callable[[bytes, bytes], tuple[str, str]]) -> Coverage:
    """Produce `events` to `source` while reading `sink` from its start, until every event is
    covered or `drain_s` passed since the last one was sent."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    coverage = Coverage()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=fetch_wait_ms, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([TopicPartition(sink, p) for p in range(partitions)])
    try:
        producing = asyncio.create_task(_produce(bootstrap, source, events, rate, coverage))
        deadline = float("inf")
        while coverage.covered < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=50, max_records=5000)
            at = time.monotonic()
            for records in batches.values():
                for r in records:
                    if r.key is not None and r.value is not None:
                        coverage.on_output(*decode(r.key, r.value), at)
            if producing.done() and deadline == float("inf"):
                producing.result()
                deadline = time.monotonic() + drain_s
        await producing
    finally:
        await consumer.stop()
    return coverage


def _user_and_event(key: bytes, value: bytes) -> tuple[str, str]:
    """Of a recommendation (the event it follows) or of a pass-through copy (the event itself)."""
    return key.decode(), json.loads(value)["event_id"]


async def passthrough(bootstrap: str, source: str, sink: str, group: str, fetch_wait_ms: int) -> None:
    """The ceiling: consume and produce every record unchanged; offsets auto-committed."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", fetch_max_wait_ms=fetch_wait_ms,
                                session_timeout_ms=6000, heartbeat_interval_ms=1000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks=1)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            for records in batches.values():
                for r in records:
                    await producer.send(sink, value=r.value, key=r.key)
    finally:
        await producer.stop()
        await consumer.stop()


def worst_by_second(latencies_s: list[float], covered_at: list[float], start: float) -> list[float]:
    """ms: the largest latency among those seen in each whole second after `start` (0 where none)."""
    worst: list[float] = []
    for latency, at in zip(latencies_s, covered_at, strict=True):
        second = max(int(at - start), 0)
        worst.extend([0.0] * (second + 1 - len(worst)))
        worst[second] = max(worst[second], round(1000 * latency, 1))
    return worst


def settle(cpu_s: Callable[[], float], quiet_cores: float = 0.1, every_s: float = 1.0,
           timeout_s: float = 30.0) -> float:
    """Seconds waited until the consumer (`cpu_s`: its CPU seconds) used under `quiet_cores` over
    `every_s`: what the previous phase left (a co-occurrence flush of its deltas, compactions) ends
    before the next is timed."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = cpu_s()
        time.sleep(every_s)
        if cpu_s() - before < quiet_cores * every_s:
            break
    return round(time.monotonic() - started, 1)


@dataclass(frozen=True)
class Clocks:
    """CPU seconds of who shares the machine in a phase: the consumer (pass-through or workers),
    the broker, and this process (load generator and output reader)."""

    consumer: ProcessClock
    broker: ProcessClock
    bench: ProcessClock = field(default_factory=lambda: ProcessClock(os.getpid()))

    def cpu_s(self) -> tuple[float, float, float]:
        return self.consumer.cpu_s(), self.broker.cpu_s(), self.bench.cpu_s()


WORKER_TOTALS = ("interests_batch_seconds_count", "interests_batch_seconds_sum", "interests_events_total",
                 "interests_recommendations_total", "interests_neighbours_flush_seconds_sum",
                 "interests_batch_store_seconds_sum")


def worker_totals(settings: list[Settings]) -> dict[str, float]:
    """The workers' counters the phase rows difference, summed over the workers."""
    from streams.ops.metrics_scrape import scrape, total

    sums = dict.fromkeys(WORKER_TOTALS, 0.0)
    for s in settings:
        samples = scrape(f"http://{s.metrics_host}:{s.metrics_port}/metrics")
        for name in WORKER_TOTALS:
            sums[name] += total(samples, name)
    return sums


def batch_stats(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the interest agent's batches looked like in a phase: how many, events and lists per
    batch, mean wall ms per batch, and the seconds the co-occurrence flushes took."""
    d = {name: after[name] - before[name] for name in WORKER_TOTALS}
    batches = d["interests_batch_seconds_count"]
    per = 1 / batches if batches else 0.0
    return {"batches": int(batches), "events_per_batch": round(d["interests_events_total"] * per, 1),
            "lists_per_batch": round(d["interests_recommendations_total"] * per, 1),
            "batch_ms": round(1000 * d["interests_batch_seconds_sum"] * per, 2),
            "store_ms": round(1000 * d["interests_batch_store_seconds_sum"] * per, 2),
            "cooc_flush_s": round(d["interests_neighbours_flush_seconds_sum"], 2)}


def _phase_row(mode: str, rate: float, coverage: Coverage, clocks: Clocks,
               cpu_before: tuple[float, float, float], wall_before: float, expected: int,
               order: str) -> dict[str, Any]:
    span = max(coverage.last_covered - coverage.first_sent, 1e-9)
    wall = time.monotonic() - wall_before
    used = [after - before for after, before in zip(clocks.cpu_s(), cpu_before, strict=True)]  # CPU s
    consumer, broker, bench = (round(seconds / wall, 2) for seconds in used)
    return {
        "mode": mode, "order": order, "rate": rate, "events": expected, "covered": coverage.covered,
        "events_per_s": round(coverage.covered / span, 1),
        "events_per_worker_core_s": round(coverage.covered / used[0], 1) if used[0] > 0 else None,
        "p50_ms": round(percentile_ms(coverage.latencies_s, 50), 2),
        "p99_ms": round(percentile_ms(coverage.latencies_s, 99), 2),
        "max_ms": round(1000 * max(coverage.latencies_s, default=0.0), 2),
        # the worst latency seen in each second of the phase: periodic spikes show as a pattern
        "max_ms_by_second": worst_by_second(coverage.latencies_s, coverage.covered_at, coverage.first_sent),
        "cpu_cores": consumer,
        # the two cores are shared: what the broker and the load generator took beside the consumer
        "broker_cpu_cores": broker,
        "bench_cpu_cores": bench,
        "rss_mb": round(clocks.consumer.rss_mb(), 1),
        "broker_rss_mb": round(clocks.broker.rss_mb(), 1),
    }


@dataclass(frozen=True)
class PipelineOptions:
    item_rates: tuple[float, ...] = (1000.0, 0.0)
    text_rates: tuple[float, ...] = (100.0, 0.0)
    seconds: float = 10.0  # length of a fixed-rate phase
    max_events: int = 20_000  # events of a max-rate item or passthrough phase
    max_text_events: int = 2_000  # events of a max-rate text phase
    drain_s: float = 60.0
    workers: int = 1  # worker processes sharing the events topic's partitions
    seed: int = 1
    orders: tuple[str, ...] = ("sessions",)  # of the item events: "sessions" (time order), "interleaved"
    broker: BrokerKind = "kafka"  # a local Apache Kafka, or the embedded Tansu


def _count(rate: float, options: PipelineOptions, at_max: int) -> int:
    return int(rate * options.seconds) if rate > 0 else at_max


def run_pipeline(settings: Settings, options: PipelineOptions = PipelineOptions(), dataset: str = "ml-100k",
                 progress: Progress = lambda line: None) -> dict[str, Any]:
    from streams.admin import create_topics, ensure_topics
    from streams.offline.replay import replay
    from streams.ops.worker_process import WorkerProcess

    data = load_dataset(dataset)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch, bench_broker(options.broker, scratch) as broker:
        s = on_own_broker(settings, broker, scratch, "pipeline")
        ensure_topics(s)
        create_topics(s, [PASS_SOURCE, PASS_SINK])
        wait_ms = s.fetch_max_wait_ms

        # the ceiling first, with the machine otherwise idle
        copier = subprocess.Popen(
            [sys.executable, "-m", "streams.bench.pipeline", "passthrough", s.bootstrap, PASS_SOURCE,
             PASS_SINK, f"pass-{time.time_ns()}", str(wait_ms)], start_new_session=True)
        try:
            assert broker.process is not None
            clocks = Clocks(ProcessClock(copier.pid), ProcessClock(broker.process.pid))
            # until the copier has joined its group and copies: not part of any phase
            asyncio.run(_measure(s.bootstrap, PASS_SOURCE, PASS_SINK, s.partitions, wait_ms,
                                 item_events(data, "warm", 1000, int(time.time() * 1000)), 0, 1000,
                                 options.drain_s, _user_and_event))
            for rate in sorted({*options.item_rates}, reverse=True):
                n = _count(rate, options, options.max_events)
                progress(f"passthrough at {rate or 'max'} events/s: {n} events")
                cpu, wall = clocks.cpu_s(), time.monotonic()
                cov = asyncio.run(_measure(s.bootstrap, PASS_SOURCE, PASS_SINK, s.partitions, wait_ms,
                                           item_events(data, f"p{rate}", n, int(time.time() * 1000)),
                                           rate, n, options.drain_s, _user_and_event))
                rows.append(_phase_row("passthrough", rate, cov, clocks, cpu, wall, n, "sessions"))
        finally:
            copier.kill()
            copier.wait()

        workers = []
        for n in range(options.workers):
            own = s if n == 0 else replace(s, metrics_port=free_port(), web_port=free_port(),
                                           data_dir=Path(scratch) / f"data-{n}")
            workers.append((own, WorkerProcess(own, Path(scratch) / f"worker-{n}.log").start()))
        try:
            for own, _ in workers:
                wait_for_port(own.metrics_host, own.metrics_port, timeout_s=180)
            progress(f"{len(workers)} worker(s) up; embedding the catalog")
            replay(s, replace(data, interactions=[]), wait_catalog=True)
            clocks = replace(clocks, consumer=ProcessClock(*(w.process.pid for _, w in workers
                                                             if w.process is not None)))
            # warm the worker (first batches, caches, JIT-free but allocator warm-up) before measuring
            asyncio.run(_measure(s.bootstrap, s.topic("events"), s.topic("recommendations"), s.partitions,
                                 wait_ms, item_events(data, "warm", 2000, int(time.time() * 1000)), 0, 2000,
                                 options.drain_s, _user_and_event))
            phases = [("item", r, order) for order in options.orders for r in options.item_rates]
            phases += [("text", r, "random") for r in options.text_rates]
            for mode, rate, order in phases:
                at_max = options.max_events if mode == "item" else options.max_text_events
                n = _count(rate, options, at_max)
                run = f"{mode}{rate}{order}"
                now_ms = int(time.time() * 1000)
                events = (item_events(data, run, n, now_ms, order) if mode == "item"
                          else text_events(data, run, n, now_ms, options.seed))
                settled_s = settle(clocks.consumer.cpu_s)
                progress(f"{mode} ({order}) at {rate or 'max'} events/s: {n} events"
                         f" (workers quiet after {settled_s} s)")
                totals = worker_totals([own for own, _ in workers])
                cpu, wall = clocks.cpu_s(), time.monotonic()
                cov = asyncio.run(_measure(s.bootstrap, s.topic("events"), s.topic("recommendations"),
                                           s.partitions, wait_ms, events, rate, n, options.drain_s,
                                           _user_and_event))
                if not all(w.alive() for _, w in workers):
                    raise RuntimeError(f"a worker died; see {scratch}/worker-*.log")
                rows.append(_phase_row(mode, rate, cov, clocks, cpu, wall, n, order)
                            | batch_stats(totals, worker_totals([own for own, _ in workers]))
                            | {"settled_s": settled_s})
        finally:
            for _, w in workers:
                w.stop()
    return {"rows": rows, "broker": options.broker, "backend": settings.encoder_backend,
            "batch_size": settings.batch_size, "partitions": settings.partitions, "workers": options.workers,
            "cores": os.cpu_count(), "orders": list(options.orders),
            "item_vs_passthrough": item_vs_passthrough(rows, options.orders[0]),
            "item_vs_passthrough_by_order": {o: item_vs_passthrough(rows, o) for o in options.orders}}


def item_vs_passthrough(rows: list[dict[str, Any]], order: str | None = None) -> float | None:
    """Item events absorbed at max rate (in `order`, when given) over the pass-through's at max
    rate, in one run; None unless both ran at max (a fixed rate says what was offered, not what
    either can do)."""
    def at_max(mode: str) -> float:
        return max((r["events_per_s"] for r in rows if r["mode"] == mode and r["rate"] == 0
                    and (mode != "item" or order is None or r.get("order") == order)), default=0.0)

    ceiling, item = at_max("passthrough"), at_max("item")
    return round(item / ceiling, 3) if ceiling and item else None


def table(report: dict[str, Any]) -> str:
    lines = [f"{'mode':<12}{'order':<12}{'rate':>6}{'events':>8}{'events/s':>10}{'per core':>9}{'p50 ms':>9}"
             f"{'p99 ms':>9}{'cpu':>6}{'broker':>7}{'bench':>6}{'rss MB':>8}"]
    for r in report["rows"]:
        per_core = r.get("events_per_worker_core_s") or 0.0
        lines.append(f"{r['mode']:<12}{r.get('order', ''):<12}{r['rate'] or 'max':>6}{r['covered']:>8}"
                     f"{r['events_per_s']:>10.0f}{per_core:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
                     f"{r['cpu_cores']:>6.2f}{r.get('broker_cpu_cores', 0.0):>7.2f}"
                     f"{r.get('bench_cpu_cores', 0.0):>6.2f}{r['rss_mb']:>8.0f}")
    batched = [r for r in report["rows"] if r.get("batches")]
    if batched:
        lines.append(f"{'mode':<12}{'order':<12}{'rate':>6}{'batches':>9}{'events/batch':>14}{'lists/batch':>13}"
                     f"{'ms/batch':>10}{'store ms':>10}{'cooc flush s':>14}")
        for r in batched:
            lines.append(f"{r['mode']:<12}{r.get('order', ''):<12}{r['rate'] or 'max':>6}{r['batches']:>9}"
                         f"{r['events_per_batch']:>14.1f}{r['lists_per_batch']:>13.1f}{r['batch_ms']:>10.1f}"
                         f"{r.get('store_ms', 0.0):>10.1f}{r['cooc_flush_s']:>14.1f}")
    for order, ratio in (report.get("item_vs_passthrough_by_order") or {}).items():
        if ratio is not None:
            lines.append(f"item events ({order}) at max rate: {ratio:.2f}x the pass-through")
    return "\n".join(lines)


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "passthrough":
    asyncio.run(passthrough(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])))
