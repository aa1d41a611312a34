"""The join of MovieLens titles to TMDB films, on titles whose forms differ."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from encoders import item_document
from streams.cli import parser
from streams.offline.datasets import CatalogItem, Dataset, Interaction, with_films
from streams.offline.tmdb import Film, FilmIndex, key, read_films, title_keys


def film(title: str, year: int | None, votes: int = 10, original: str = "",
         overview: str = "A plot.") -> Film:
    return Film((title, original) if original else (title,), year, overview, "", ("heist",), votes)


def test_keys_agree_on_articles_accents_ampersands_and_punctuation() -> None:
    assert key("Usual Suspects, The") == key("The Usual Suspects") == "usual suspects"
    assert key("Postino, Il") == key("Il Postino") == "postino"
    assert key("Truth About Cats & Dogs, The") == key("The Truth About Cats and Dogs")
    assert key("Amélie") == key("Amelie")
    assert key("Monty Python's Life of Brian") == key("Monty Python’s Life of Brian")
    assert key("Star Trek: The Wrath of Khan") == key("Star Trek - The Wrath of Khan")
    assert key("The") == "the"  # a title that is only an article keeps it


def test_title_keys_read_the_year_and_every_bracketed_name() -> None:
    assert title_keys("Seven (Se7en) (1995)") == ({"seven", "se7en"}, 1995)
    assert title_keys("Nikita (La Femme Nikita) (1990)") == ({"nikita", "femme nikita"}, 1990)
    assert title_keys("Untitled") == ({"untitled"}, None)


def test_a_match_needs_a_shared_name_within_a_year() -> None:
    index = FilmIndex([film("The Usual Suspects", 1995), film("Se7en", 1995), film("Heat", 2013),
                       film("Il Postino: The Postman", 1994, original="Il Postino")])
    assert index.match("Usual Suspects, The (1995)") is not None
    assert index.match("Usual Suspects, The (1996)") is not None  # release dates differ by a year
    assert index.match("Usual Suspects, The (1997)") is None
    assert index.match("Seven (Se7en) (1995)") is not None  # by its alternative title
    assert index.match("Postino, Il (1994)") is not None  # by the original title
    assert index.match("Heat (1995)") is None  # same name, another film
    assert index.match("Usual Suspects, The") is None  # no year, no match


def test_the_nearest_year_then_the_most_voted_film_wins() -> None:
    exact, off, popular = film("Emma", 1996, 5, overview="exact"), film("Emma", 1997, 900, overview="off"), \
        film("Emma", 1996, 50, overview="popular")
    assert FilmIndex([off, exact]).match("Emma (1996)") is exact
    assert FilmIndex([exact, popular, off]).match("Emma (1996)") is popular


def test_matched_items_get_genres_description_and_keywords_and_the_rate_is_counted() -> None:
    items = [CatalogItem("1", "Usual Suspects, The (1995)", None, ("Crime", "Thriller")),
             CatalogItem("2", "Fargo (1996)", None, ("Crime",))]
    interactions = [Interaction("u", "1", 1), Interaction("u", "2", 2), Interaction("v", "1", 3)]
    index = FilmIndex([Film(("The Usual Suspects",), 1995, "Verbal Kint talks.", "No coincidence.",
                            ("heist", "twist"), 10)])
    data = with_films(Dataset("toy", items, interactions), index)
    assert item_document(data.items[0].title, data.items[0].text, data.items[0].tags) == (
        "Usual Suspects, The (1995). Crime, Thriller. No coincidence. Verbal Kint talks. heist, twist")
    assert data.items[1] == items[1]  # no film: its own document
    assert data.first(2).documents.report()["interactions_matched"] == 1  # `eval --limit 2` counts two
    assert data.documents.report() == {
        "source": "tmdb", "items_matched": 1, "interactions_matched": 2, "items": 2, "interactions": 3,
        "items_share": 0.5, "interactions_share": 0.6667}


def test_the_tmdb_table_is_read_with_its_json_lists(tmp_path: Path) -> None:
    path = tmp_path / "movies.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, ["title", "original_title", "release_date", "overview", "tagline",
                                    "keywords", "vote_count"])
        writer.writeheader()
        writer.writerow({"title": "Se7en", "original_title": "Se7en", "release_date": "1995-09-22",
                         "overview": " Two detectives. ", "tagline": "", "vote_count": "5765",
                         "keywords": json.dumps([{"id": 1, "name": "serial killer"}])})
        writer.writerow({"title": "Undated", "original_title": "Sans date", "release_date": "",
                         "overview": "", "tagline": "", "keywords": "", "vote_count": ""})
    films = read_films(path)
    assert films[0] == Film(("Se7en",), 1995, "Two detectives.", "", ("serial killer",), 5765)
    assert films[1].year is None and films[1].titles == ("Undated", "Sans date")


@pytest.mark.parametrize("command", [["eval"], ["train-cf"], ["finetune"], ["produce"], ["demo"],
                                     ["bench", "encoder"]])
def test_every_data_set_command_takes_the_documents(command: list[str]) -> None:
    assert parser().parse_args([*command, "--documents", "tmdb"]).documents == "tmdb"
    assert parser().parse_args(command).documents == "titles"
    with pytest.raises(SystemExit):
        parser().parse_args([*command, "--documents", "wikipedia"])
