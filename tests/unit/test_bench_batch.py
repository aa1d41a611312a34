"""`interests bench batch` on a small data set with the real encoder: every batch timed, step by step."""

from __future__ import annotations

from pathlib import Path

from encoders import Encoder
from streams.bench.batch import USERS_PER_CALL, run_batch_bench, table
from streams.offline.datasets import interleaved
from streams.settings import Settings
from tests.unit.test_bench_state import ITEMS


def test_the_batch_report_times_each_step_of_every_batch(tmp_path: Path, encoder: Encoder) -> None:
    (tmp_path / "items.csv").write_text("item_id,title,text,tags\n" + "".join(
        f"{i},{t.split('|')[0]},{t.split('|')[1]},\n" for i, t in ITEMS.items()))
    taken = {f"u{n}": [str(1 + (n + j) % len(ITEMS)) for j in range(5)] for n in range(8)}  # 40 events
    rows = [f"{u},{i},{100 * n + t},,view\n" for n, (u, items) in enumerate(taken.items())
            for t, i in enumerate(items)]
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp,rating,type\n" + "".join(rows))
    report = run_batch_bench(Settings(), str(tmp_path), events_per_batch=3, encoder=encoder)
    assert report["batches"] == 3  # the last 20% of 40 events: 8, in batches of 3, 3 and 2
    assert report["items"] == len(ITEMS) and report["users_per_batch"] >= 1
    assert set(report["ms"]) == {"state", "fold", "pairs", "top_k", "list"}
    assert all(ms > 0 for ms in report["ms"].values())
    assert abs(report["ms_total"] - sum(report["ms"].values())) < 0.01
    assert [r["users"] for r in report["top_k_per_call"]] == list(USERS_PER_CALL)
    assert "us per event" in table(report)


def test_interleaved_takes_each_user_in_turn_and_keeps_each_users_order() -> None:
    events = ["a1", "a2", "b1", "a3", "c1", "b2"]
    assert interleaved(events, lambda e: e[0]) == ["a1", "b1", "c1", "a2", "b2", "a3"]
    assert interleaved([], lambda e: e) == []
