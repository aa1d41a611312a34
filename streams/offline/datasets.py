"""Real data to replay: MovieLens-100k (fetched at run time, never committed) or generic CSVs.

MovieLens-100k comes from the RecBole wheel on PyPI (`pip download --no-deps recbole`, cached)
or from a local GroupLens `ml-100k` folder (u.data, u.item). Its licence forbids redistribution.

Generic format, a folder with:
  interactions.csv  user_id,item_id,timestamp[,rating][,type]   timestamp in epoch seconds
  items.csv         item_id,title[,text][,tags]                 tags separated by "|"

Documents (what text an item is embedded from), `documents=`:
  titles  the data set's own: for MovieLens "Title (year). Genre, Genre"
  tmdb    films joined to TMDB 5000 (streams/offline/tmdb.py) also get its tagline, overview and
          keywords; the rest keep their own text. The match rate goes in `Dataset.documents`.
"""

from __future__ import annotations

import collections
import csv
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar, get_args

from streams.cache_dir import cache_dir
from streams.offline.tmdb import MAX_KEYWORDS, FilmIndex, enriched_text, fetch_tmdb, read_films

DocumentSource = Literal["titles", "tmdb"]
DOCUMENT_SOURCES: tuple[DocumentSource, ...] = get_args(DocumentSource)

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
class Documents:
    """Where the items' text came from and how much of the data set it reaches."""

    source: DocumentSource = "titles"
    matched: frozenset[str] = field(default=frozenset(), repr=False)  # the enriched items' ids
    interactions_matched: int = 0  # interactions with such an item
    items: int = 0
    interactions: int = 0

    @property
    def items_matched(self) -> int:
        return len(self.matched)

    def report(self) -> dict[str, object]:
        return {"source": self.source, "items_matched": self.items_matched,
                "interactions_matched": self.interactions_matched, "items": self.items,
                "interactions": self.interactions,
                "items_share": round(self.items_matched / max(self.items, 1), 4),
                "interactions_share": round(self.interactions_matched / max(self.interactions, 1), 4)}

    def line(self) -> str:
        if self.source == "titles":
            return "documents: the data set's own titles and tags"
        share = self.report()
        return (f"documents: {self.source}, {self.items_matched:,} of {self.items:,} items matched "
                f"({share['items_share']:.1%}), {self.interactions_matched:,} of {self.interactions:,} "
                f"interactions ({share['interactions_share']:.1%})")


@dataclass(frozen=True)
class Dataset:
    name: str
    items: list[CatalogItem]
    interactions: list[Interaction]  # in event-time order
    documents: Documents = Documents()

    def titles(self) -> dict[str, str]:
        return {i.item_id: i.title for i in self.items}

    def first(self, n: int) -> Dataset:
        """Only the first `n` interactions, the documents' counts with them."""
        kept = self.interactions[:n]
        reached = sum(x.item_id in self.documents.matched for x in kept)
        counted = replace(self.documents, interactions_matched=reached, interactions=len(kept))
        return replace(self, interactions=kept, documents=counted)


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


def load_dataset(name_or_path: str, documents: DocumentSource = "titles") -> Dataset:
    """"ml-100k" (RecBole wheel, cached), a GroupLens ml-100k folder, or a generic CSV folder,
    with the items' documents from `documents`."""
    dataset = _load(name_or_path)
    if documents == "tmdb":
        return with_films(dataset, FilmIndex(read_films(fetch_tmdb(cache_dir()))))
    if documents != "titles":
        raise ValueError(f"unknown documents {documents!r}; choose one of {', '.join(DOCUMENT_SOURCES)}")
    own = Documents("titles", frozenset(), 0, len(dataset.items), len(dataset.interactions))
    return replace(dataset, documents=own)


def with_films(dataset: Dataset, films: FilmIndex) -> Dataset:
    """Items whose "Title (year)" finds a film get "Genres. Tagline Overview" as their text and the
    film's keywords as their tags; the rest are kept as they are."""
    items, matched = [], set()
    for item in dataset.items:
        film = films.match(item.title)
        if film is None or not (film.overview or film.tagline):
            items.append(item)
            continue
        matched.add(item.item_id)
        items.append(replace(item, text=enriched_text(item.tags, film), tags=film.keywords[:MAX_KEYWORDS]))
    reached = sum(x.item_id in matched for x in dataset.interactions)
    return replace(dataset, items=items, documents=Documents(
        "tmdb", frozenset(matched), reached, len(items), len(dataset.interactions)))


def _load(name_or_path: str) -> Dataset:
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
