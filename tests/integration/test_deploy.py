"""The deploy files and the README, checked by the tools that read them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest

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


def test_readme_documents_every_setting_and_command() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`(INTERESTS_[A-Z_]+)`", readme))
    assert documented == {f"INTERESTS_{f.name.upper()}" for f in fields(Settings)}
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in commands:
        assert f"`interests {command}" in readme, command
