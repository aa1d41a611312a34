"""The ACLs each role needs, how they are printed, and what a broker's answers show missing."""

from __future__ import annotations

import json
import shlex

from streams.access import as_json, kafka_acls_commands, missing_acls, required_acls
from streams.settings import Settings
from streams.topics import TOPIC_NAMES, changelog_topics

S = Settings.from_env({"INTERESTS_SECURITY_PROTOCOL": "SASL_SSL", "INTERESTS_SASL_USERNAME": "recs",
                       "INTERESTS_SASL_PASSWORD": "x", "INTERESTS_APP_ID": "shop",
                       "INTERESTS_TOPIC_PREFIX": "shop."})
ALL = ["READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER", "DELETE"]


def test_the_worker_needs_its_prefix_its_changelogs_and_its_group_only() -> None:
    acls = required_acls(S)
    assert {a.principal for a in acls} == {"User:recs"}
    assert {(a.resource_type, a.pattern_type, a.name) for a in acls} == {
        ("TOPIC", "PREFIXED", "shop."), ("TOPIC", "LITERAL", "shop-users-changelog"),
        ("TOPIC", "LITERAL", "shop-item_rows-changelog"), ("GROUP", "LITERAL", "shop")}
    assert {a.operation for a in acls if a.resource_type == "GROUP"} == {"READ"}
    assert all(a.resource_type != "CLUSTER" for a in acls)
    # every topic the worker uses is covered by Describe, Read and Write
    for topic in [S.topic(n) for n in TOPIC_NAMES] + changelog_topics(S):
        assert {a.operation for a in acls if a.covers("TOPIC", topic)} >= {"DESCRIBE", "READ", "WRITE"}
    assert not any(a.covers("TOPIC", "other.events") for a in acls)


def test_readers_and_producers_get_less() -> None:
    reader = required_acls(S, "reader")
    assert {a.operation for a in reader} == {"DESCRIBE", "READ"}
    assert all(a.resource_type == "TOPIC" for a in reader)
    producer = required_acls(S, "producer")
    writes = {a.name for a in producer if a.operation == "WRITE"}
    assert writes == {"shop.items", "shop.events"}
    assert not any(a.resource_type == "GROUP" for a in producer)


def test_printed_as_kafka_acls_lines_and_json() -> None:
    lines = kafka_acls_commands(required_acls(S), "k1:9093", "/etc/kafka/admin.properties")
    assert len(lines) == 4
    words = shlex.split(lines[0])
    assert words[:7] == ["kafka-acls.sh", "--bootstrap-server", "k1:9093", "--command-config",
                         "/etc/kafka/admin.properties", "--add", "--allow-principal"]
    assert words[7] == "User:recs" and words.count("--operation") == 4
    assert words[-4:] == ["--topic", "shop.", "--resource-pattern-type", "prefixed"]
    assert shlex.split(lines[-1])[-4:] == ["--group", "shop", "--resource-pattern-type", "literal"]
    objects = json.loads(json.dumps(as_json(required_acls(S))))
    assert {"resource_type", "pattern_type", "name", "operation"} <= set(objects[0])
    assert objects[0]["resource_type"] == "TOPIC" and objects[0]["pattern_type"] == "PREFIXED"


def test_missing_acls_from_the_brokers_answers() -> None:
    needed = required_acls(S)
    full = {t: {"error_code": 0, "authorized_operations": ALL}
            for t in [S.topic(n) for n in TOPIC_NAMES] + changelog_topics(S)}
    assert missing_acls(needed, full, {"READ", "DESCRIBE"}) == []
    assert missing_acls(needed, {t: {"error_code": 0, "authorized_operations": ["ALL"]} for t in full},
                        {"ALL"}) == []

    no_write = dict(full, **{"shop-users-changelog": {"error_code": 0,
                                                      "authorized_operations": ["READ", "DESCRIBE"]}})
    gone = missing_acls(needed, no_write, {"READ"})
    assert [(a.name, a.operation) for a in gone] == [("shop-users-changelog", "WRITE"),
                                                     ("shop-users-changelog", "CREATE")]

    refused = dict(full, **{"shop.events": {"error_code": 29, "authorized_operations": None}})
    gone = missing_acls(needed, refused, {"READ"})
    assert {a.operation for a in gone} == {"DESCRIBE", "READ", "WRITE", "CREATE"}
    assert len(gone) == 4  # the prefix rule once, though many topics fall under it

    never_created = dict(full, **{"shop.dlq": {"error_code": 3}})
    assert [a.operation for a in missing_acls(needed, never_created, {"READ"})] == ["CREATE"]

    assert [a.resource_type for a in missing_acls(needed, full, None)] == ["GROUP"]
    assert [a.operation for a in missing_acls(needed, full, {"DESCRIBE"})] == ["READ"]
