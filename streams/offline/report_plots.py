"""PNG plots of a recorded run: latency distribution, throughput over time, live HR@k over time."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from streams.ops.metrics_recorder import Sample, buckets, hit_rate, models, rates, summary

PLOTS = ("latency.png", "throughput.png", "online_hr.png")


def write_report(recorded: Sequence[Sample], folder: Path, window_s: float = 10.0) -> list[Path]:
    """Writes the three PNGs and report.json into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in PLOTS]
    _latency(recorded, paths[0])
    _throughput(recorded, paths[1])
    _online_hr(recorded, paths[2], window_s)
    report = folder / "report.json"
    report.write_text(json.dumps(summary(recorded, window_s), indent=1) + "\n")
    return [*paths, report]


def _latency(recorded: Sequence[Sample], path: Path) -> None:
    cumulative = buckets(recorded[-1].samples, "interests_end_to_end_seconds") if recorded else []
    fig, ax = plt.subplots(figsize=(8, 4))
    labels, counts, below, last_bound = [], [], 0.0, 0.0
    for bound, count in cumulative:
        labels.append(f">{last_bound * 1000:g} ms" if math.isinf(bound) else f"≤{bound * 1000:g} ms")
        counts.append(count - below)
        below, last_bound = count, bound
    n = below
    ax.bar(range(len(counts)), [c / n * 100 if n else 0.0 for c in counts], color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_ylabel("% of events")
    ax.set_title(f"Event to published list ({n:.0f} events)")
    _save(fig, path)


def _throughput(recorded: Sequence[Sample], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, series in (("events in", rates(recorded, "interests_events_total")),
                          ("accepted", rates(recorded, "interests_events_total", outcome="ok")),
                          ("lists out", rates(recorded, "interests_recommendations_total"))):
        if series:
            ax.plot(*zip(*series, strict=True), label=label)
    ax.set_xlabel("seconds")
    ax.set_ylabel("per second")
    ax.set_title("Throughput")
    ax.legend()
    _save(fig, path)


def _online_hr(recorded: Sequence[Sample], path: Path, window_s: float) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    for model in models(recorded):
        series = hit_rate(recorded, model, window_s)
        if series:
            ax.plot(*zip(*series, strict=True), marker=".", label=model)
    ax.set_xlabel("seconds")
    ax.set_ylabel(f"hits / events ({window_s:g} s windows)")
    ax.set_ylim(bottom=0)
    ax.set_title("Live HR@k: users taking an item from the list they were sent")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
