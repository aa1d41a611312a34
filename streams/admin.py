"""The app's topics, created with their configuration where missing and checked where present:
a worker starts on a bare cluster, and producers and workers agree on partition counts."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import GroupAuthorizationFailedError, KafkaError, TopicAlreadyExistsError, for_code
from kafka.structs import OffsetAndMetadata

from streams.access import AccessDenied, missing_acls, required_acls
from streams.connection import client_options
from streams.settings import Settings
from streams.topics import TOPIC_NAMES, changelog_topics, topic_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicReport:
    """What `ensure_topics` found, by full topic name."""

    partitions: dict[str, int] = field(default_factory=dict)  # as the broker has them now
    created: tuple[str, ...] = ()
    mismatched: dict[str, tuple[int, int]] = field(default_factory=dict)  # (found, wanted) partitions
    failed: dict[str, str] = field(default_factory=dict)  # could not be created, and why


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> TopicReport:
    """Every topic of the app (`streams.topics`) and its tables' changelog topics (compacted, as
    Faust makes them), created with the settings' partitions, replication and per-topic
    configuration where missing. Existing topics are left as they are; one whose partition count
    differs is reported (keys would map to other partitions than the producers' and the tables'
    changelogs expect)."""
    wanted = {settings.topic(name): {"num_partitions": settings.partitions,
                                     "replication_factor": settings.replication_factor,
                                     "configs": topic_config(name, settings)} for name in TOPIC_NAMES}
    wanted |= {name: {"num_partitions": settings.partitions,
                      "replication_factor": settings.replication_factor,
                      "configs": {"cleanup.policy": "compact"}} for name in changelog_topics(settings)}
    return _ensure(settings, wanted, timeout_s)


def check_access(settings: Settings, timeout_s: float = 30.0) -> None:
    """Raises `AccessDenied` naming every ACL the worker needs (streams/access.py) that the
    cluster does not grant these settings' principal. Run after `ensure_topics`: the topics then
    exist, and the broker tells which operations the principal has on each."""
    topics = [settings.topic(n) for n in TOPIC_NAMES] + changelog_topics(settings)
    admin = admin_client(settings, timeout_s)
    try:
        answers = {t["name"]: t for t in admin.describe_topics(topics)}
        group_ops = _group_operations(admin, settings.app_id, settings.topic("events"), timeout_s)
    finally:
        admin.close()
    missing = missing_acls(required_acls(settings), answers, group_ops)
    if missing:
        raise AccessDenied(missing, settings.bootstrap)


def create_topics(settings: Settings, names: list[str], timeout_s: float = 30.0) -> TopicReport:
    """Plain topics of full names (benchmarks), with the app's partition count."""
    return _ensure(settings, {n: {"num_partitions": settings.partitions,
                                  "replication_factor": settings.replication_factor} for n in names},
                   timeout_s)


def _group_operations(admin: KafkaAdminClient, group: str, probe: str, timeout_s: float) -> set[str] | None:
    """The operations the principal has on `group`; None when it may not even describe it. On a
    new cluster the group coordinator comes up with the first request for it: retried."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = admin.describe_groups([group]).get(group, {})
            error = str(answer.get("error") or "")
            if "GroupAuthorizationFailed" in error:
                return None
            if answer.get("authorized_operations") is None and answer.get("group_state") == "Dead":
                return _new_group_operations(admin, group, probe)
            if not error:
                return set(answer.get("authorized_operations") or ())
            # NotCoordinator, CoordinatorLoadInProgress: the group's coordinator is moving in
            if time.monotonic() > deadline:
                raise RuntimeError(f"describing consumer group {group}: {error}")
            time.sleep(0.5)
        except KafkaError as exc:
            if isinstance(exc, GroupAuthorizationFailedError):
                return None
            if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _new_group_operations(admin: KafkaAdminClient, group: str, probe: str) -> set[str]:
    """A group nobody joined yet has no operations to describe; finding its coordinator took
    Describe. Read (what joining takes; Faust waits forever on a refused join) is tried with the
    one commit that changes nothing: partition 0 of `probe` at its earliest offset, where a new
    group starts anyway (auto.offset.reset=earliest)."""
    tp = TopicPartition(probe, 0)
    try:
        earliest = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST})[tp].offset
        error = admin.alter_group_offsets(group, {tp: OffsetAndMetadata(earliest, "", -1)}).get(tp)
    except KafkaError as exc:  # the topic itself refused: reported on its own
        log.warning("could not check Read on group %s: %s", group, exc)
        return {"DESCRIBE", "READ"}
    return {"DESCRIBE"} if error is GroupAuthorizationFailedError else {"DESCRIBE", "READ"}


def admin_client(settings: Settings, timeout_s: float = 30.0) -> KafkaAdminClient:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id="interests-admin",
                                    **client_options(settings))
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _ensure(settings: Settings, wanted: Mapping[str, dict[str, Any]], timeout_s: float) -> TopicReport:
    admin = admin_client(settings, timeout_s)
    try:
        existing = set(admin.list_topics())
        missing = {name: spec for name, spec in wanted.items() if name not in existing}
        failed: dict[str, str] = {}
        created: list[str] = []
        if missing:
            response = admin.create_topics(dict(missing), raise_errors=False)
            for topic in response.get("topics", []):
                error = for_code(topic["error_code"])
                if topic["error_code"] == 0:
                    created.append(topic["name"])
                elif error is not TopicAlreadyExistsError:  # another process was first
                    why = topic.get("error_message") or error.description
                    failed[topic["name"]] = f"{error.__name__}: {why}"
            if created:
                admin.wait_for_topics(created)
                log.info("created topics %s", created)
        partitions = _partition_counts(admin, [n for n in wanted if n not in failed])
    finally:
        admin.close()
    mismatched = {name: (n, wanted[name]["num_partitions"]) for name, n in partitions.items()
                  if n != wanted[name]["num_partitions"]}
    for name, (n, want) in mismatched.items():
        log.error("topic %s has %d partitions, the settings say %d (INTERESTS_PARTITIONS): keys land in "
                  "other partitions than the tables' changelogs expect", name, n, want)
    for name, why in failed.items():
        log.error("topic %s could not be created: %s", name, why)
    return TopicReport(partitions, tuple(created), mismatched, failed)


def _partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names) if t["error_code"] == 0}
