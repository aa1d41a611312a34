"""Least privilege: the ACLs each role of the product needs on a cluster with an authorizer
(`interests acls`), and the worker's check, at start, that the broker grants them all.

Roles and what they do on the cluster:
- worker: reads and writes every topic of the prefix, creates them on a bare cluster, and owns
  its tables' changelog topics and its consumer group (joins, commits, reads committed offsets).
- producer (`interests produce`): creates the topics where missing, writes items and events,
  reads the item vectors (it waits for the catalog to be embedded).
- reader (`interests tail`, `explain`, `train-cf --from-broker`): reads the prefix's topics, with
  no consumer group.
No role needs a cluster ACL: since Kafka 2.8 an idempotent producer needs only Write on a topic."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from streams.settings import Settings
from streams.topics import changelog_topics

Role = Literal["worker", "producer", "reader"]
ROLES: tuple[Role, ...] = ("worker", "producer", "reader")
# Kafka's own spelling (kafka-acls --operation), by its enum name
OPERATIONS = {"READ": "Read", "WRITE": "Write", "CREATE": "Create", "DESCRIBE": "Describe"}
UNKNOWN_TOPIC, TOPIC_DENIED = 3, 29  # Kafka error codes of a metadata answer


@dataclass(frozen=True)
class Acl:
    """One allow rule: Kafka's resource type, pattern type and operation names."""

    resource_type: Literal["TOPIC", "GROUP"]
    pattern_type: Literal["LITERAL", "PREFIXED"]
    name: str
    operation: Literal["READ", "WRITE", "CREATE", "DESCRIBE"]
    principal: str
    why: str = ""
    host: str = "*"
    permission: str = "ALLOW"

    def covers(self, resource_type: str, name: str) -> bool:
        if resource_type != self.resource_type:
            return False
        return name.startswith(self.name) if self.pattern_type == "PREFIXED" else name == self.name

    def describe(self) -> str:
        kind = "topics prefixed" if self.pattern_type == "PREFIXED" else self.resource_type.lower()
        return f"{OPERATIONS[self.operation]} on {kind} {self.name!r} for {self.principal}"


def principal_of(settings: Settings) -> str:
    """Kafka's principal for these settings: `User:<SASL user>`; with mutual TLS `User:<the
    certificate's CN>` (what a mapping rule like `RULE:^CN=([^,]+)$/$1/` makes of it; Kafka's
    default is the whole subject, then name it with --principal); `User:ANONYMOUS` otherwise."""
    if settings.uses_sasl:
        return f"User:{settings.sasl_username}"
    if settings.ssl_certfile:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        cert = x509.load_pem_x509_certificate(Path(settings.ssl_certfile).read_bytes())
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if names:
            return f"User:{names[0].value!s}"
    return "User:ANONYMOUS"


def required_acls(settings: Settings, role: Role = "worker", principal: str | None = None) -> list[Acl]:
    who = principal or principal_of(settings)
    prefix = settings.topic_prefix

    def rule(resource: Literal["TOPIC", "GROUP"], pattern: Literal["LITERAL", "PREFIXED"], name: str,
             ops: Iterable[Literal["READ", "WRITE", "CREATE", "DESCRIBE"]], why: str) -> list[Acl]:
        return [Acl(resource, pattern, name, op, who, why) for op in ops]

    if role == "reader":
        return rule("TOPIC", "PREFIXED", prefix, ("DESCRIBE", "READ"),
                    "reads recommendations and state topics")
    if role == "producer":
        return [*rule("TOPIC", "PREFIXED", prefix, ("DESCRIBE", "CREATE"),
                      "creates the topics on a bare cluster (as the worker does)"),
                *rule("TOPIC", "LITERAL", settings.topic("items"), ("WRITE",), "writes the catalog"),
                *rule("TOPIC", "LITERAL", settings.topic("events"), ("WRITE",), "writes user events"),
                *rule("TOPIC", "LITERAL", settings.topic("item-vectors"), ("READ",),
                      "waits until the catalog is embedded")]
    if role != "worker":
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    acls = rule("TOPIC", "PREFIXED", prefix, ("DESCRIBE", "READ", "WRITE", "CREATE"),
                "reads and writes its topics, and creates them on a bare cluster")
    for topic in changelog_topics(settings):
        acls += rule("TOPIC", "LITERAL", topic, ("DESCRIBE", "READ", "WRITE", "CREATE"),
                     "a table's changelog: written with each state, read back to restore it")
    return acls + rule("GROUP", "LITERAL", settings.app_id, ("READ",),
                       "its consumer group: joins, commits and reads committed offsets")


def kafka_acls_commands(acls: Iterable[Acl], bootstrap: str,
                        command_config: str = "admin.properties") -> list[str]:
    """Kafka's own command lines that grant `acls`: one per resource and principal."""
    grouped: dict[tuple[str, str, str, str], list[str]] = {}
    for acl in acls:
        key = (acl.principal, acl.resource_type, acl.pattern_type, acl.name)
        grouped.setdefault(key, []).append(acl.operation)
    lines = []
    for (principal, resource, pattern, name), ops in grouped.items():
        words = ["kafka-acls.sh", "--bootstrap-server", bootstrap, "--command-config", command_config,
                 "--add", "--allow-principal", principal]
        for op in ops:
            words += ["--operation", OPERATIONS[op]]
        words += [f"--{resource.lower()}", name, "--resource-pattern-type", pattern.lower()]
        lines.append(shlex.join(words))
    return lines


def as_json(acls: Iterable[Acl]) -> list[dict[str, str]]:
    return [asdict(a) for a in acls]


class AccessDenied(RuntimeError):
    """The broker does not grant what the worker needs; the message names each missing ACL."""

    def __init__(self, missing: list[Acl], bootstrap: str) -> None:
        self.missing = missing
        lines = "\n".join(f"  - {a.describe()} ({a.why})" for a in missing)
        grant = "\n".join(f"  {c}" for c in kafka_acls_commands(missing, bootstrap))
        super().__init__(f"the cluster refuses {len(missing)} permission(s) the worker needs:\n{lines}\n"
                         f"an administrator grants them with:\n{grant}")


def missing_acls(needed: list[Acl], topics: Mapping[str, Mapping[str, Any]],
                 group_ops: set[str] | None) -> list[Acl]:
    """What of `needed` the broker's answers show as not granted.

    `topics`: per topic the worker uses, its metadata answer (`error_code`, and for an existing
    topic the `authorized_operations` the principal has on it). `group_ops`: the operations granted
    on the consumer group; None when describing it was refused. A topic whose metadata is refused
    lacks Describe (and everything else); one that does not exist after the worker tried to
    create it lacks Create."""
    missing: list[Acl] = []
    for name, answer in topics.items():
        rules = [a for a in needed if a.covers("TOPIC", name)]
        code = int(answer.get("error_code", 0))
        if code == TOPIC_DENIED:
            granted: set[str] = set()
        elif code == UNKNOWN_TOPIC:
            granted = {op for op in OPERATIONS if op != "CREATE"}  # nothing to check but creation
        else:
            granted = set(answer.get("authorized_operations") or ())
            if "ALL" in granted:
                granted |= set(OPERATIONS)
        missing += [a for a in rules if a.operation not in granted and a not in missing]
    group_rules = [a for a in needed if a.resource_type == "GROUP"]
    if group_ops is None:
        missing += group_rules
    else:
        missing += [a for a in group_rules if a.operation not in group_ops and "ALL" not in group_ops]
    return missing
