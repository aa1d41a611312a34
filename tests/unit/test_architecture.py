"""Imports keep the architecture's direction: the pure core knows no Kafka and no service, the
service knows none of the tools around it, and only `streams/` imports Faust or reads the
environment."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("streams.bench", "streams.offline", "streams.ops")


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def modules(folder: str, recursive: bool = True) -> list[Path]:
    base = ROOT / folder
    found = sorted(base.rglob("*.py") if recursive else base.glob("*.py"))
    assert found, folder
    return found


def offenders(paths: list[Path], banned: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for p in paths:
        bad = sorted(n for n in imports(p) if any(n == b or n.startswith(b + ".") for b in banned))
        if bad:
            out[p.name if not p.is_relative_to(ROOT) else str(p.relative_to(ROOT))] = bad
    return out


def test_the_core_imports_no_service_and_no_kafka() -> None:
    assert offenders(modules("cf"), ("encoders", "streams", "faust", "kafka", "aiokafka", "os")) == {}
    assert offenders(modules("encoders"), ("streams", "cf", "faust", "kafka", "aiokafka")) == {}


def test_the_service_imports_none_of_the_tools_around_it() -> None:
    service = [p for p in modules("streams", recursive=False) if p.name != "cli.py"]
    assert len(service) > 10
    assert offenders(service, TOOLS) == {}


def test_the_rule_sees_a_banned_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from streams.bench import pipeline\nimport faust\nfrom streams.topics import Topics\n")
    assert offenders([bad], TOOLS) == {"bad.py": ["streams.bench", "streams.bench.pipeline"]}
    assert offenders([bad], ("faust",)) == {"bad.py": ["faust"]}
