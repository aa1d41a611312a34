from __future__ import annotations

from pathlib import Path

from streams.offline.datasets import load_dataset


def test_generic_csv(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text(
        "item_id,title,text,tags\n1,Alien,A ship's crew meets a monster,Horror|Sci-Fi\n2,Up,,\n")
    (tmp_path / "interactions.csv").write_text(
        "user_id,item_id,timestamp,rating,type\nu,2,20,,view\nu,1,10.5,4,rate\n")
    data = load_dataset(str(tmp_path))
    assert [i.tags for i in data.items] == [("Horror", "Sci-Fi"), ()]
    assert [(x.item_id, x.ts_ms, x.rating, x.type) for x in data.interactions] == [
        ("1", 10500, 4.0, "rate"), ("2", 20000, None, "view")]


def test_grouplens_folder(tmp_path: Path) -> None:
    flags = ["0"] * 19
    flags[1] = flags[15] = "1"  # Action, Sci-Fi
    (tmp_path / "u.item").write_text("1|Star Wars (1977)|01-Jan-1977||url|" + "|".join(flags) + "\n",
                                     encoding="latin-1")
    (tmp_path / "u.data").write_text("5\t1\t5\t881250949\n")
    data = load_dataset(str(tmp_path))
    assert data.items[0].tags == ("Action", "Sci-Fi")
    assert data.interactions[0].ts_ms == 881250949000
