"""On a secured Apache Kafka (SASL_SSL with SCRAM-SHA-512, mutual TLS on a second port, the
StandardAuthorizer refusing what no ACL allows): the pipeline runs as a least-privilege user that
holds exactly what `interests acls` prints; a missing ACL, refused credentials and a foreign CA
each end a command within 30 s with a clear message, and lose no event; no log holds a password."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)

from streams.access import Acl, required_acls
from streams.admin import ensure_topics
from streams.connection import client_options
from streams.ops.broker import KafkaBroker, free_port
from streams.ops.broker_security import broker_security
from streams.ops.topic_reader import read_from_beginning
from streams.settings import Settings
from tests.integration.conftest import BROKER_KIND, Stack, publish_catalog, stack_settings
from tests.integration.test_pipeline import pipeline_holds

pytestmark = pytest.mark.integration
REFUSAL_S = 30  # the longest a command may take to give up on settings that cannot work


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    if BROKER_KIND != "kafka":
        pytest.skip("the secured cluster is the project's Apache Kafka")
    folder = tmp_path_factory.mktemp("secured")
    with KafkaBroker(port=free_port(), data_dir=folder / "kafka", log_file=folder / "broker.log",
                     secured=True) as broker:
        yield broker


def app_settings(broker: KafkaBroker, **env: str) -> Settings:
    """A deployment of its own, connecting as the application user `app`."""
    return stack_settings(broker, {**broker.client_env("app"), **env})


def grant(broker: KafkaBroker, acls: list[Acl]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap,
                             **client_options(Settings.from_env(broker.client_env("admin"))))
    try:
        result = admin.create_acls([
            ACL(a.principal, a.host, ACLOperation[a.operation], ACLPermissionType.ALLOW,
                ResourcePattern(ResourceType[a.resource_type], a.name,
                                ACLResourcePatternType[a.pattern_type]))
            for a in acls])
    finally:
        admin.close()
    assert not result["failed"], result["failed"]


def interests(settings: Settings, log: Path, *args: str, timeout_s: float = 90) -> tuple[int, str, float]:
    """Runs `interests ARGS` with `settings`; its output also lands in `log` (the secrets check
    reads every log of the tier)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "streams.cli", *args],
                          env={**os.environ, **settings.to_env()}, capture_output=True, text=True,
                          timeout=timeout_s)
    log.write_text(done.stdout + done.stderr)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def test_the_pipeline_runs_as_a_user_holding_only_the_printed_acls(secured: KafkaBroker,
                                                                   tmp_path: Path) -> None:
    settings = app_settings(secured)
    # what `interests acls` prints, run by Kafka's own kafka-acls (AclCommand) as the administrator
    rc, out, _ = interests(settings, tmp_path / "acls.log", "acls", "--command-config",
                           str(secured.security.java_client_config()))
    lines = [line for line in out.splitlines() if line.startswith("kafka-acls.sh ")]
    assert rc == 0 and len(lines) == 4, out
    for line in lines:
        done = subprocess.run(secured.tool("org.apache.kafka.tools.AclCommand", *shlex.split(line)[1:]),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    ensure_topics(settings)
    stack = Stack(settings, tmp_path)
    try:
        pipeline_holds(stack)
    finally:
        stack.stop()

    # `interests tail` over SASL_SSL, and a reader with a client certificate over mutual TLS: its
    # CN is mapped to the same principal, so the same ACLs hold
    rc, out, _ = interests(settings, tmp_path / "tail.log", "tail", "--from-beginning", "--max", "1")
    assert rc == 0 and json.loads(out.splitlines()[0])["items"], out
    mutual = Settings.from_env(secured.client_env("app", mutual_tls=True), topic_prefix=settings.topic_prefix,
                               partitions=settings.partitions)
    consumer = read_from_beginning(mutual, "recommendations", consumer_timeout_ms=3000)
    try:
        assert list(consumer), "nothing read over mutual TLS"
    finally:
        consumer.close()
    # nothing the run did was refused: the printed ACLs were all it needed
    assert secured.log_file is not None
    denied = [line for line in secured.log_file.read_text().splitlines()
              if "is Denied" in line and (settings.topic_prefix in line or settings.app_id in line)]
    assert not denied, denied[:5]


@pytest.mark.parametrize("missing", ["changelog_write", "group_read"])
def test_a_missing_acl_stops_the_worker_naming_it(secured: KafkaBroker, tmp_path: Path, missing: str) -> None:
    settings = app_settings(secured)
    acls = required_acls(settings)
    changelog = f"{settings.app_id}-users-changelog"
    if missing == "changelog_write":
        dropped = next(a for a in acls if a.name == changelog and a.operation == "WRITE")
        expected = f"Write on topic '{changelog}' for User:app"
        granted = [a for a in acls if a != dropped]
    else:  # Describe on the group, not Read: the group is new, so joining it is what would fail
        dropped = next(a for a in acls if a.resource_type == "GROUP")
        expected = f"Read on group '{settings.app_id}' for User:app"
        granted = [a for a in acls if a != dropped] + [replace(dropped, operation="DESCRIBE")]
    grant(secured, granted)
    rc, out, seconds = interests(settings, tmp_path / "worker.log", "worker")
    assert rc == 2 and seconds < REFUSAL_S, (rc, seconds, out[-3000:])
    assert expected in out and "kafka-acls.sh" in out, out[-3000:]
    assert out.count("refuses 1 permission") == 1, out[-3000:]


def test_refused_credentials_and_a_foreign_ca_end_each_command_and_lose_no_event(
        secured: KafkaBroker, tmp_path: Path) -> None:
    settings = app_settings(secured)
    grant(secured, required_acls(settings))
    ensure_topics(settings)
    stack = Stack(settings, tmp_path)
    try:
        publish_catalog(stack)
        for user, item in (("u1", "h1"), ("u2", "c1")):
            stack.send("events", user, {"event_id": f"{user}-1", "user_id": user, "type": "click",
                                        "item_id": item, "ts": 1_000})
        stack.flush()

        foreign = broker_security(tmp_path / "elsewhere", "127.0.0.1").cafile  # another CA, same names
        cases = {
            "wrong_password": (replace(settings, sasl_password=settings.sasl_password + "x"),
                               "refused SCRAM-SHA-512 authentication as 'app'"),
            "unknown_user": (replace(settings, sasl_username="nobody"),
                             "refused SCRAM-SHA-512 authentication as 'nobody'"),
            "foreign_ca": (replace(settings, ssl_cafile=str(foreign)), "does not verify against"),
        }
        for name, (bad, expected) in cases.items():
            for command in (["worker"], ["produce", "--limit", "1"], ["tail", "--max", "1"]):
                rc, out, seconds = interests(bad, tmp_path / f"{name}-{command[0]}.log", *command)
                assert rc == 2 and seconds < REFUSAL_S, (name, command, rc, seconds, out[-2000:])
                assert expected in out and "cannot use the Kafka cluster" in out, (name, command, out[-2000:])

        # the events sent meanwhile waited in Kafka: the next correct start recommends after them
        stack.start_worker()
        latest = stack.recommendations(lambda got: {"u1", "u2"} <= set(got), timeout_s=120)
        assert latest["u1"]["event_id"] == "u1-1" and latest["u2"]["event_id"] == "u2-1"
    finally:
        stack.stop()


def test_no_log_holds_a_password(secured: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every log this tier wrote so far (workers, commands, the broker), read for each password
    of the secured cluster; its own secret files are the only place they may be."""
    passwords = list(secured.security.passwords.values())
    logs = [p for p in tmp_path_factory.getbasetemp().rglob("*")
            if p.is_file() and p.suffix in (".log", ".txt")]
    assert secured.log_file in logs and len(logs) >= 10, logs
    for path in logs:
        data = path.read_bytes()
        for password in passwords:
            assert password.encode() not in data, f"a password is in {path}"
