"""The operator's view, end to end: a real Prometheus (Debian's) scrapes a real worker fed through
the real broker, loads deploy/alerts.yml, and answers every query of the Grafana dashboard."""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.ops.broker import free_port, wait_for_port
from tests.integration.conftest import CATALOG, Stack, publish_catalog
from tests.integration.test_deploy import ROOT, tool

pytestmark = pytest.mark.integration
DASHBOARD = ROOT / "deploy/grafana/dashboards/interests.json"
# Grafana's variables, as Grafana would fill them with 1 s scrapes over the last minutes
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__range": "5m"}


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector (or scalar) of `expr`; raises on a query Prometheus cannot parse."""
        try:
            data = self.get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{expr}: {error.read().decode()}") from error
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else [
            {"metric": {}, "value": data["result"]}]
        return result


@pytest.fixture()
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[tuple[Prometheus, Stack]]:
    """A worker (short co-occurrence flushes, so that panel fills too) and a Prometheus scraping
    it every second, with the rule files and scrape job of deploy/prometheus.yml."""
    stack.settings = replace(stack.settings, neighbours_flush_s=1.0)
    publish_catalog(stack)
    worker = stack.start_worker()
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ROOT / "deploy" / f) for f in config["rule_files"]]
    [job] = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{worker.settings.metrics_port}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with open(tmp_path / "prometheus.log", "w") as log:
        process = subprocess.Popen(
            [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, timeout_s=30)
        yield Prometheus(f"http://127.0.0.1:{port}"), stack
    finally:
        process.terminate()
        process.wait(timeout=30)


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables filled in) for every target of every panel."""
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            out.append((panel["title"], expr))
    return out


def has_numbers(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(r["value"][1])) for r in result)


def test_every_dashboard_panel_and_alert_works_on_a_live_worker(
    prometheus: tuple[Prometheus, Stack],
) -> None:
    prom, stack = prometheus
    [worker] = stack.workers
    stack.wait_metric(worker, "interests_catalog_ready", lambda v: v == 1)
    deadline = time.monotonic() + 60  # Prometheus has scraped the worker before any event
    while not has_numbers(prom.query('interests_online_events_total{job="interests-worker"}')):
        assert time.monotonic() < deadline, "Prometheus never scraped the worker"
        time.sleep(0.5)
    users = [f"mon-u{n}" for n in range(20)]
    items = sorted(CATALOG)
    for n, user in enumerate(users):
        stack.send("events", user, {"event_id": f"{user}-a", "user_id": user, "type": "click",
                                    "item_id": items[n % len(items)], "ts": 1_000})
        stack.send("events", user, {"event_id": f"{user}-s", "user_id": user, "type": "search",
                                    "text": f"films about {['space', 'cooking', 'ghosts'][n % 3]}",
                                    "ts": 2_000})
    stack.send("events", "mon-u0", b"{not json")
    stack.flush()
    latest = stack.recommendations(lambda got: all(got.get(u, {}).get("event_id") == f"{u}-s" for u in users))

    # each user takes the item ranked first for them (a hit) or an item not shown (a miss)
    for n, user in enumerate(users):
        shown = [i["item_id"] for i in latest[user]["items"] + latest[user].get("new_items", [])]
        taken = shown[0] if n % 2 == 0 else next(i for i in items if i not in shown)
        stack.send("events", user, {"event_id": f"{user}-b", "user_id": user, "type": "view",
                                    "item_id": taken, "ts": 3_000})
    stack.flush()
    stack.wait_metric(worker, "interests_online_events_total", lambda v: v >= len(users))
    assert stack.wait_metric(worker, "interests_online_hits_total", lambda v: v >= len(users) // 2) == 10
    stack.wait_metric(worker, "interests_neighbours_flush_seconds_count", lambda v: v >= 1)

    # every panel shows numbers: wait for scrapes on both sides of the events (rates need two)
    missing: list[tuple[str, str]] = dashboard_queries()
    deadline = time.monotonic() + 40
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = [(title, expr) for title, expr in missing if not has_numbers(prom.query(expr))]
    assert not missing, f"panels without data: {missing}"

    # the rule files loaded, and every rule evaluates without error
    groups = prom.get("/api/v1/rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    on_disk = yaml.safe_load((ROOT / "deploy/alerts.yml").read_text())["groups"]
    assert len(rules) == sum(len(g["rules"]) for g in on_disk)
    deadline = time.monotonic() + 10
    while any(r.get("health") != "ok" for r in rules) and time.monotonic() < deadline:
        time.sleep(1)
        rules = [r for g in prom.get("/api/v1/rules")["groups"] for r in g["rules"]]
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    for rule in rules:
        prom.query(rule["query"])  # parses and runs as a plain query too
    # the live HR@k recording rule carries the worker's model label and the measured share
    [hit_rate] = prom.query("interests:online_hit_rate:rate5m")
    assert hit_rate["metric"]["model"] == latest[users[0]]["model"]
    assert float(hit_rate["value"][1]) == pytest.approx(0.5)
    # a healthy worker: no paging alert fires
    firing = [a for a in prom.get("/api/v1/alerts")["alerts"]
              if a["state"] == "firing" and a["labels"].get("severity") == "page"]
    assert not firing, firing
