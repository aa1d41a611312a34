"""What `interests eval` prints and writes: a table, the JSON report, a PNG of HR@k over time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def table(report: dict[str, Any]) -> str:
    window = ""
    if report.get("scored_from_ms"):
        start = np.datetime64(report["scored_from_ms"], "ms").astype("datetime64[s]")
        window = f", scored from {start} on: {report['methods']['hybrid']['n']} events"
    lines = [f"{report['dataset']} {report['protocol']} @{report['k']}  ({report['wall_s']} s{window})"
             f"  encoder {report['encoder']}",
             f"documents {report['documents']['source']}: {report['documents']['items_matched']} items "
             f"matched, {report['documents']['interactions_matched']} interactions",
             f"{'method':<20}{'HR':>8}{'NDCG':>8}{'MRR':>8}{'cov':>8}{'HR cold':>9}{'HR new':>8}"]
    for name, m in report["methods"].items():
        lines.append(
            f"{name:<20}{m['hr']:>8.4f}{m['ndcg']:>8.4f}{m['mrr']:>8.4f}{m['coverage']:>8.3f}"
            f"{m['slices']['cold_items']['hr']:>9.4f}{m['slices']['new_users']['hr']:>8.4f}")
    for other in ("single", "without_seq"):
        paired = report.get(f"hybrid_vs_{other}")
        if paired:
            lines.append(f"hybrid vs hybrid_{other}, target by target: {paired['only_a']} hit by hybrid "
                         f"only, {paired['only_b']} by hybrid_{other} only (sign test p = {paired['p']:.3f})")
    for fit in report.get("seq_fits") or []:
        lines.append(f"seq model {fit['version']} on {fit['events']} events: best epoch {fit['best_epoch']} "
                     f"of {len(fit['epochs'])}, validation NDCG {fit['best_ndcg']}, "
                     f"{fit['epochs'][-1]['wall_s']} s")
    picks = report.get("new_item_picks")
    if picks and picks["targets"]:
        lines.append(f"new items (no interaction before the event): {picks['targets']} targets, "
                     f"{picks['hr']:.1%} among the hybrid's {picks['slots']} new-item pick(s)")
    if report.get("hybrid_fits"):
        last = report["hybrid_fits"][-1]
        names = "/".join(last["policy"]["weights"][0])
        lines.append(f"hybrid weights (last fit, {last['cases']} validation cases), {names} "
                     "by history length:")
        bounds = [0, *last["policy"]["bounds"], None]
        for b in last["buckets"]:
            lo, hi = bounds[b["bucket"]], bounds[b["bucket"] + 1]
            w = "/".join(f"{v:.1f}" for v in b["weights"].values())
            lines.append(f"  {lo}..{hi if hi is not None else ''}: {w}  "
                         f"({b['cases']} cases, NDCG {b['validation_ndcg'] if b['cases'] else '-'})")
    return "\n".join(lines)


def write(report: dict[str, Any], out: Path) -> None:
    """The report without its per-event timeline (that goes to the plot)."""
    body = {key: value for key, value in report.items() if key != "timeline"}
    out.write_text(json.dumps(body, indent=2) + "\n")


def plot(report: dict[str, Any], out: Path, window: int = 5000) -> None:
    """HR@k along replay time, one line per method: the mean over a sliding window of `window`
    scored events, placed at the window's last event time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = np.asarray(report["timeline"]["ts_ms"], dtype=np.int64)  # (E,) ms
    if ts.size == 0:
        return
    w = max(1, min(window, ts.size))
    when = (ts[w - 1 :]).astype("datetime64[ms]")  # (E - w + 1,) UTC
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    for name, hits in report["timeline"]["hits"].items():
        h = np.asarray(hits, dtype=np.float64)  # (E,) 0/1
        rolling = np.convolve(h, np.ones(w) / w, mode="valid")  # (E - w + 1,)
        ax.plot(when, rolling, label=name, linewidth=2.2 if name == "hybrid" else 1.2)
    ax.set_title(f"{report['dataset']} {report['protocol']}: HR@{report['k']} "
                 f"(mean of the last {w} scored events)")
    ax.set_xlabel("event time")
    ax.set_ylabel(f"HR@{report['k']}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
