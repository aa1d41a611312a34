"""The deploy files and the README, checked by the tools that read them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from streams.cli import parser
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        assert not os.environ.get("CI"), f"CI installs {name} (make tools)"
        pytest.skip(f"{name} not installed")
    return path


def test_compose_file_is_valid() -> None:
    done = subprocess.run([tool("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_prometheus_config_is_valid() -> None:
    done = subprocess.run([tool("promtool"), "check", "config", str(ROOT / "deploy/prometheus.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_docs_name_every_setting_and_the_readme_every_command() -> None:
    operations = (ROOT / "docs/operations.md").read_text()
    table = set(re.findall(r"^\| `(INTERESTS_[A-Z_]+)` \|", operations, re.MULTILINE))
    assert table == {f"INTERESTS_{f.name.upper()}" for f in fields(Settings)}
    readme = (ROOT / "README.md").read_text()
    assert "docs/operations.md#configuration" in readme
    assert set(re.findall(r"`(INTERESTS_[A-Z_]+)`", readme)) <= table  # no setting that does not exist
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in commands:
        assert f"`interests {command}" in readme, command
    for link in re.findall(r"\]\((docs/[a-z]+\.md)", readme):
        assert (ROOT / link).is_file(), link


def test_alert_rules_load_and_fire_on_their_cases() -> None:
    """deploy/alerts_test.yml feeds each alert the series it is for (and healthy ones)."""
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([tool("promtool"), *args], capture_output=True, text=True, cwd=ROOT / "deploy")
        assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_two_workers_prometheus_with_rules_and_grafana_provisioned() -> None:
    done = subprocess.run([tool("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    workers = [name for name, s in services.items() if s.get("command") is None and "build" in s]
    assert len(workers) == 2
    volumes = {name: {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in s.get("volumes", [])}
               for name, s in services.items()}
    assert all(volumes[w] == {"/var/lib/interests"} for w in workers)
    scraped = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())["scrape_configs"][0]
    assert {t.split(":")[0] for t in scraped["static_configs"][0]["targets"]} == set(workers)
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= volumes["prometheus"]
    assert {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"} <= volumes["grafana"]


def test_grafana_files_point_at_each_other() -> None:
    grafana = ROOT / "deploy/grafana"
    provisioning = grafana / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"]
    [provider] = yaml.safe_load((provisioning / "dashboards/interests.yml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"  # where compose mounts them
    dashboard = json.loads((grafana / "dashboards/interests.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_kubernetes_manifests_name_real_settings_and_mount_the_state() -> None:
    docs = {d["kind"]: d for f in sorted((ROOT / "deploy/k8s").glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text())}
    assert set(docs) == {"ConfigMap", "Service", "StatefulSet", "ServiceMonitor"}
    settings = {f"INTERESTS_{f.name.upper()}" for f in fields(Settings)}
    config = docs["ConfigMap"]["data"]
    assert set(config) <= settings, set(config) - settings
    sts = docs["StatefulSet"]["spec"]
    [container] = sts["template"]["spec"]["containers"]
    assert container["envFrom"][0]["configMapRef"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    [mount] = container["volumeMounts"]
    assert mount["mountPath"] == config["INTERESTS_DATA_DIR"]
    assert mount["name"] == sts["volumeClaimTemplates"][0]["metadata"]["name"]
    assert sts["replicas"] <= int(config["INTERESTS_PARTITIONS"])
    assert sts["serviceName"] == docs["Service"]["metadata"]["name"]
    [port] = container["ports"]
    assert port["containerPort"] == int(config["INTERESTS_METRICS_PORT"])
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == port["name"]
    assert docs["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == port["name"]
    pod_labels = sts["template"]["metadata"]["labels"].items()
    assert sts["selector"]["matchLabels"].items() <= pod_labels
    assert docs["Service"]["spec"]["selector"].items() <= pod_labels
    service_labels = docs["Service"]["metadata"]["labels"].items()
    assert docs["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items() <= service_labels
