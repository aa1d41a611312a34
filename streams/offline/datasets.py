"""Real data to replay: MovieLens-100k (fetched at run time, never committed) or generic CSVs.

MovieLens-100k comes from the RecBole wheel on PyPI (`pip download --no-deps recbole`, cached)
or from a local GroupLens `ml-100k` folder (u.data, u.item). Its licence forbids redistribution.

Generic format, a folder with:
  interactions.csv  user_id,item_id,timestamp[,rating][,type]   timestamp in epoch seconds
  items.csv         item_id,title[,text][,tags]                 tags separated by "|"
"""

from __future__ import annotations

import collections
import csv
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from streams.cache_dir import cache_dir

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)


@dataclass(frozen=True)
class CatalogItem:
    item_id: str
    title: str
    text: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Interaction:
    user_id: str
    item_id: str
    ts_ms: int
    rating: float | None = None
    type: str = "rate"


@dataclass(frozen=True)
class Dataset:
    name: str
    items: list[CatalogItem]
    interactions: list[Interaction]  # in event-time order

    def titles(self) -> dict[str, str]:
        return {i.item_id: i.title for i in self.items}


T = TypeVar("T")


def interleaved(events: Sequence[T], user_of: Callable[[T], str]) -> list[T]:
    """The events round-robin over their users, each user's own order kept: what a broker sees
    when many users are active at once (a replay in time order gives one user's session after
    another: most of a batch from a handful of users)."""
    queues: dict[str, collections.deque[T]] = {}
    for e in events:
        queues.setdefault(user_of(e), collections.deque()).append(e)
    out: list[T] = []
    while queues:
        for user in list(queues):
            out.append(queues[user].popleft())
            if not queues[user]:
                del queues[user]
    return out


def load_dataset(name_or_path: str) -> Dataset:
    """"ml-100k" (RecBole wheel, cached), a GroupLens ml-100k folder, or a generic CSV folder."""
    if name_or_path == "ml-100k":
        return load_recbole_ml100k(fetch_recbole_ml100k())
    folder = Path(name_or_path)
    if (folder / "u.data").is_file():
        return load_grouplens_ml100k(folder)
    if (folder / "interactions.csv").is_file():
        return load_generic(folder)
    if (folder / "ml-100k.inter").is_file():
        return load_recbole_ml100k(folder)
    raise FileNotFoundError(
        f"{folder}: expected a GroupLens ml-100k folder (u.data, u.item) or interactions.csv + items.csv"
    )


def fetch_recbole_ml100k(cache: Path | None = None) -> Path:
    target = (cache or cache_dir()) / "ml-100k"
    if (target / "ml-100k.inter").is_file() and (target / "ml-100k.item").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "recbole==1.2.1",
             "--dest", tmp],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"could not fetch MovieLens-100k (RecBole wheel):\n{done.stderr}")
        wheel = next(Path(tmp).glob("recbole-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for suffix in ("inter", "item"):
                member = f"recbole/dataset_example/ml-100k/ml-100k.{suffix}"
                (target / f"ml-100k.{suffix}").write_bytes(archive.read(member))
    return target


def _sorted(interactions: list[Interaction]) -> list[Interaction]:
    return sorted(interactions, key=lambda x: x.ts_ms)  # stable: ties keep file order


def load_recbole_ml100k(folder: Path) -> Dataset:
    items = []
    with open(folder / "ml-100k.item", encoding="utf-8") as f:
        next(f)
        for line in f:
            item_id, title, year, genres = [*line.rstrip("\n").split("\t"), "", "", ""][:4]
            full_title = f"{title} ({year})" if year else title
            items.append(CatalogItem(item_id, full_title, None, tuple(genres.split())))
    interactions = []
    with open(folder / "ml-100k.inter", encoding="utf-8") as f:
        next(f)
        for line in f:
            user, item, rating, ts = line.split("\t")
            interactions.append(Interaction(user, item, int(float(ts)) * 1000, float(rating)))
    return Dataset("ml-100k", items, _sorted(interactions))


def load_grouplens_ml100k(folder: Path) -> Dataset:
    items = []
    with open(folder / "u.item", encoding="latin-1") as f:
        for line in f:
            fields = line.rstrip("\n").split("|")
            flags = fields[5:5 + len(ML100K_GENRES)]
            genres = tuple(g for g, flag in zip(ML100K_GENRES, flags, strict=False) if flag == "1")
            items.append(CatalogItem(fields[0], fields[1], None, genres))
    interactions = []
    with open(folder / "u.data", encoding="utf-8") as f:
        for line in f:
            user, item, rating, ts = line.split()
            interactions.append(Interaction(user, item, int(ts) * 1000, float(rating)))
    return Dataset("ml-100k", items, _sorted(interactions))


def load_generic(folder: Path) -> Dataset:
    items = []
    with open(folder / "items.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            tags = tuple(t for t in (row.get("tags") or "").split("|") if t)
            items.append(CatalogItem(row["item_id"], row["title"], row.get("text") or None, tags))
    interactions = []
    with open(folder / "interactions.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            rating = row.get("rating")
            interactions.append(Interaction(
                row["user_id"], row["item_id"], int(float(row["timestamp"]) * 1000),
                float(rating) if rating not in (None, "") else None,
                row.get("type") or ("rate" if rating not in (None, "") else "view"),
            ))
    return Dataset(folder.name, items, _sorted(interactions))
