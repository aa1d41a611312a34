"""`interests bench state` on a small data set with the real encoder: interests and bytes per user."""

from __future__ import annotations

from pathlib import Path

from encoders import Encoder
from streams.bench.state import run_state_bench
from streams.settings import Settings

ITEMS = {"1": "Alien|A crew hunted by a monster on a spaceship",
         "2": "Halloween|A masked killer stalks a town",
         "3": "The Shining|A haunted hotel drives a writer mad",
         "4": "Julie & Julia|A cook learns French cuisine",
         "5": "Chef|A chef starts a food truck",
         "6": "Ratatouille|A rat who cooks in Paris"}


def test_the_state_report_counts_interests_and_their_bytes(tmp_path: Path, encoder: Encoder) -> None:
    (tmp_path / "items.csv").write_text("item_id,title,text,tags\n" + "".join(
        f"{i},{t.split('|')[0]},{t.split('|')[1]},\n" for i, t in ITEMS.items()))
    taken = {"fan": ["1", "2", "3"], "both": ["1", "4", "2", "5", "3", "6"]}
    rows = [f"{u},{i},{n},,view\n" for u, items in taken.items() for n, i in enumerate(items, start=1)]
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp,rating,type\n" + "".join(rows))
    report = run_state_bench(Settings.from_env({}, max_interests=3), str(tmp_path), None, encoder=encoder)
    assert (report["users"], report["events"], report["max_interests"]) == (2, 9, 3)
    counts = report["interests_per_user_histogram"]
    assert sum(counts) == 2 and len(counts) - 1 <= 3 and report["interests_per_user"] >= 1
    # an interest: 13 bytes of weight, activity and item count, 384 float16, up to 3 one-character ids
    assert 13 + 768 < report["bytes_per_interest"] <= 13 + 768 + 3 * 3 <= 1024
    assert report["bytes_per_user"] > report["interests_per_user"] * report["bytes_per_interest"]
    assert report["float16_cosine_to_float32"]["min"] > 0.999
