from __future__ import annotations

import pytest

from encoders.transformer import TransformerEncoder


@pytest.fixture(scope="session")
def encoder() -> TransformerEncoder:
    """The real all-MiniLM-L6-v2, loaded once per test session."""
    return TransformerEncoder(threads=1)
