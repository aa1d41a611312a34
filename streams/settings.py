"""One frozen settings object, read from INTERESTS_* environment variables at the edge."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, cast

from cf.decay import DecayConfig
from cf.interests import InterestConfig
from cf.neighbours import CoocConfig
from cf.weights import DEFAULT_WEIGHTS, EventWeights, parse_weights
from encoders.loading import BACKENDS

BrokerProfile = Literal["kafka", "tansu"]


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# each one aiokafka writes (cramjam) and the kafka-python readers decode (gzip, lz4, zstandard)
COMPRESSIONS = ("none", "gzip", "lz4", "zstd")
EVENT_LOOPS = ("uvloop", "asyncio")


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"  # Faust URL; kafka-python takes the host:port part
    broker_profile: BrokerProfile = "kafka"  # "tansu": the embedded broker's workarounds
    app_id: str = "realtime-interests"  # consumer group and changelog topic prefix
    topic_prefix: str = "interests."
    partitions: int = 4  # of every topic keyed by user or item id
    replication_factor: int = 1  # of every topic the app creates (3 on a production cluster)
    events_retention_h: float = 7 * 24.0  # how long the events and item-pairs topics keep records
    dlq_retention_h: float = 30 * 24.0  # how long the dead-letter topic keeps records
    store: str = "rocksdb://"  # Faust table store; "memory://" for agent tests
    data_dir: Path = Path("var/data")
    rocksdb_write_buffer_mb: int = 4  # RocksDB memtable per table partition (two of them at most)
    rocksdb_memtables_mb: int = 16  # all memtables of a table on this worker (its partitions together)
    # RocksDB read cache of a table on this worker (its partitions share it), index and filter blocks
    # included: raise it where a worker's table files run to gigabytes (docs/operations.md)
    rocksdb_block_cache_mb: int = 8
    encoder: str = ""  # "" = packaged all-MiniLM-L6-v2, else a local model folder
    encoder_backend: str = "onnx-int8"  # torch-fp32 | onnx-fp32 | onnx-int8 (see `interests bench encoder`)
    # intra-op threads of torch or ONNX Runtime; 0: one in a worker (`WORKER_ENCODER_THREADS`), the
    # library's default (one per core) in the offline commands
    encoder_threads: int = 0
    encoder_cache_texts: int = 10000  # LRU cache of recent texts' vectors; 0 = off
    onnx_cache: str = ""  # exported ONNX graphs; "" = ~/.cache/realtime-interests/onnx
    scoring_threads: int = 1  # BLAS threads of the worker's matrix products; idle BLAS threads spin
    embed_batch: int = 32  # texts per forward pass
    batch_size: int = 2000  # events taken per stream batch (most a backlog gives at once)
    batch_wait_s: float = 0.02  # longest wait to fill a batch
    malloc_trim_s: float = 15.0  # free pages inside the heap go back to the kernel this often; 0 = never
    event_loop: str = "uvloop"  # the worker's asyncio loop: uvloop (libuv) or asyncio (the standard one)
    half_life_s: float = 7 * 24 * 3600.0
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    top_k: int = 10
    cf_model: str = ""  # folder written by `interests train-cf`; "" = no factor model
    cf_fold_in_items: int = 20  # a user's latest items the factor model folds in
    max_interests: int = 4  # K: interests kept per user (1: one averaged vector)
    interest_join_cosine: float = 0.5  # an event joins its nearest interest at least this close
    cooc_window: int = 20  # recent items an interaction pairs with, and a user's scored by
    cooc_pair_decay: float = 0.9  # weight of a pair l steps apart: p^(l-1)
    cooc_recency_decay: float = 0.8  # weight of the l-th newest recent item when scoring
    cooc_row_size: int = 200  # co-occurring items kept per item
    neighbours_flush_s: float = 5.0  # longest a changed co-occurrence row waits to be republished
    ann_min_items: int = 100_000  # from this catalog size on, users are ranked over index candidates
    ann_nprobe: int = 16  # inverted-file cells the index scans per query
    ann_candidates: int = 200  # text candidates per user from the index
    new_item_slots: int = 1  # places in each list kept for new items (0 = none)
    new_item_max: int = 1  # an item with fewer interactions than this is new
    history_size: int = 500
    search_size: int = 4  # a user's latest searches kept as positions of their sequence (0 = none)
    user_ttl_s: float = 365 * 86_400.0  # a user idle this long (event time) is forgotten; 0 = never
    user_ttl_check_s: float = 300.0  # how often each worker looks for idle users
    max_text_chars: int = 2000
    min_event_ts_ms: int = 100_000_000_000  # 1973-03-03: an earlier ts is seconds sent as ms
    max_event_ahead_s: float = 86_400.0  # an event time further ahead of the worker's clock is refused
    publish_linger_ms: int = 2  # output producer: wait this long to fill a request
    producer_batch_bytes: int = 262_144  # per-partition batch of both producers (changelog rows are KBs)
    # of both producers' batches: none | gzip | lz4 | zstd. zstd: aiokafka compresses lz4
    # at level 9 (HC), 4-5x slower than its zstd at level 3, which also compresses more
    compression: str = "zstd"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    web_port: int = 6066
    log_level: str = "info"
    # the consumers (streams/faust_consumer.py)
    fetch_max_wait_ms: int = 20  # the agents' fetches: how long one of idle partitions may hold the others
    fetch_min_bytes: int = 1  # the agents' fetches: held (up to the wait) until this much is there
    replica_fetch_wait_ms: int = 200  # the catalog and neighbour replicas' fetches (idle polling)
    session_timeout_s: float = 10.0  # consumer group session: how long a dead worker keeps its partitions
    # how every client connects (streams/connection.py, docs/operations.md "A secured cluster")
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = "PLAIN"  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)  # never printed: `public()` masks it
    sasl_password_file: str = ""  # read at each client's start, instead of INTERESTS_SASL_PASSWORD
    ssl_cafile: str = ""  # PEM CAs the broker's certificate must chain to; "" = the system's
    ssl_certfile: str = ""  # PEM client certificate for mutual TLS (with ssl_keyfile)
    ssl_keyfile: str = ""  # its private key, where the certificate file does not hold it

    @property
    def compression_type(self) -> str | None:
        """For aiokafka and Faust: None for no compression."""
        return None if self.compression == "none" else self.compression

    @property
    def bootstrap(self) -> str:
        """host:port list for kafka-python / aiokafka."""
        return ",".join(u.split("://", 1)[-1] for u in self.broker.split(";"))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def decay(self) -> DecayConfig:
        return DecayConfig(half_life_s=self.half_life_s, history_size=self.history_size,
                           search_size=self.search_size)

    def interests(self) -> InterestConfig:
        return InterestConfig(max_interests=self.max_interests, join_cosine=self.interest_join_cosine,
                              half_life_s=self.half_life_s)

    def cooc(self) -> CoocConfig:
        return CoocConfig(window=self.cooc_window, pair_decay=self.cooc_pair_decay,
                          recency_decay=self.cooc_recency_decay, half_life_s=self.half_life_s,
                          row_size=self.cooc_row_size)

    def event_weights(self) -> EventWeights:
        return EventWeights(by_type=self.weights)

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def password(self) -> str:
        """The SASL password, from INTERESTS_SASL_PASSWORD or the file INTERESTS_SASL_PASSWORD_FILE
        names (read each time: a rotated file is picked up by the next client)."""
        if not self.sasl_password_file:
            return self.sasl_password
        try:
            return Path(self.sasl_password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"INTERESTS_SASL_PASSWORD_FILE={self.sasl_password_file}: "
                             f"{exc.strerror}") from None

    def plaintext(self) -> Settings:
        """These settings with no connection security: for a local broker the command started."""
        return replace(self, security_protocol="PLAINTEXT", sasl_username="", sasl_password="",
                       sasl_password_file="", ssl_cafile="", ssl_certfile="", ssl_keyfile="")

    def public(self) -> dict[str, object]:
        """For logs: the broker URL may carry credentials, so only its scheme and hosts; the
        password is masked."""
        values = asdict(self)
        values["broker"] = self.broker.split("@")[-1]
        values["sasl_password"] = "***" if self.sasl_password else ""
        return values

    def to_env(self) -> dict[str, str]:
        """The INTERESTS_* variables that make `from_env` rebuild these settings (child processes)."""
        env = {}
        for name, value in asdict(self).items():
            if name == "weights":
                value = ",".join(f"{k}={v}" for k, v in value.items())
            env[f"INTERESTS_{name.upper()}"] = str(value)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        values: dict[str, object] = {}
        for name, default in asdict(defaults).items():
            raw = env.get(f"INTERESTS_{name.upper()}")
            if raw is None:
                continue
            values[name] = _parse(name, raw, default)
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.encoder_backend not in BACKENDS:
            raise ValueError(f"INTERESTS_ENCODER_BACKEND must be one of {', '.join(BACKENDS)}, "
                             f"not {self.encoder_backend!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"INTERESTS_COMPRESSION must be one of {', '.join(COMPRESSIONS)}, "
                             f"not {self.compression!r}")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(f"INTERESTS_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                             f"not {self.security_protocol!r}")
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise ValueError(f"INTERESTS_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                             f"not {self.sasl_mechanism!r}")
        if self.sasl_password and self.sasl_password_file:
            raise ValueError("set INTERESTS_SASL_PASSWORD or INTERESTS_SASL_PASSWORD_FILE, not both")
        if self.uses_sasl and not (self.sasl_username and (self.sasl_password or self.sasl_password_file)):
            raise ValueError(f"INTERESTS_SECURITY_PROTOCOL={self.security_protocol} needs "
                             "INTERESTS_SASL_USERNAME and INTERESTS_SASL_PASSWORD "
                             "(or INTERESTS_SASL_PASSWORD_FILE)")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("INTERESTS_SSL_KEYFILE is the key of INTERESTS_SSL_CERTFILE, which is not set")
        if self.event_loop not in EVENT_LOOPS:
            raise ValueError(f"INTERESTS_EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, "
                             f"not {self.event_loop!r}")
        if self.broker_profile not in ("kafka", "tansu"):
            raise ValueError(f"INTERESTS_BROKER_PROFILE must be kafka or tansu, not {self.broker_profile!r}")
        for name in ("partitions", "scoring_threads", "embed_batch", "batch_size", "top_k", "history_size",
                     "cf_fold_in_items", "max_interests", "cooc_window", "cooc_row_size", "ann_min_items",
                     "ann_nprobe", "ann_candidates", "rocksdb_write_buffer_mb", "rocksdb_memtables_mb",
                     "rocksdb_block_cache_mb", "fetch_min_bytes"):
            if cast(int, getattr(self, name)) < 1:
                raise ValueError(f"INTERESTS_{name.upper()} must be >= 1")
        if not 0 <= self.search_size <= 255:
            raise ValueError("INTERESTS_SEARCH_SIZE must be within 0..255")
        self.decay()
        self.event_weights()


def _parse(name: str, raw: str, default: object) -> object:
    try:
        if name == "weights":
            return parse_weights(raw)
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
        return raw
    except ValueError as exc:
        raise ValueError(f"INTERESTS_{name.upper()}={raw!r}: {exc}") from exc
