"""The encoder interface every backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt


class Encoder(Protocol):
    dim: int  # D, the vector size
    version: str  # names the model and its weights; vectors of two versions never mix

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(N,) texts -> (N, D) float32, rows L2-normalised."""
        ...
