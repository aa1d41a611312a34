from __future__ import annotations

import numpy as np
import pytest

from encoders import item_document
from encoders.model_folder import resolve_model_folder
from encoders.transformer import TransformerEncoder


def test_vectors_are_unit_rows_in_input_order(encoder: TransformerEncoder) -> None:
    texts = ["a", "a much longer text about science fiction films in space", "horror"]
    batch = encoder.encode(texts)  # sorted by length inside, padded
    assert batch.shape == (3, encoder.dim) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-5)
    one_by_one = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)  # padding does not leak in


def test_meaning_is_closer_than_unrelated_text(encoder: TransformerEncoder) -> None:
    horror, zombies, cooking = encoder.encode(
        ["a terrifying horror movie", "zombies attack in a scary film", "baking bread and pastry"])
    assert float(horror @ zombies) > float(horror @ cooking) + 0.2


def test_version_names_the_packaged_model(encoder: TransformerEncoder) -> None:
    assert encoder.version.startswith("all-MiniLM-L6-v2@") and encoder.dim == 384


def test_no_hub_ids() -> None:
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        resolve_model_folder("sentence-transformers/all-mpnet-base-v2")


def test_item_document() -> None:
    assert item_document("Alien (1979)", None, ("Horror", "Sci-Fi")) == "Alien (1979). Horror, Sci-Fi"
    assert item_document(" Up ", "A house flies.") == "Up. A house flies."
    assert item_document("Up", "A house flies!", ("Family",)) == "Up. A house flies! Family"
