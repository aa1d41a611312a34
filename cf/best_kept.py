"""The k best of a stream, kept sorted as they come: the compiled kernels' top-k."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from cf.compiled import compiled


@compiled
def keep_best(values: npt.NDArray[np.floating], places: npt.NDArray[np.intp], filled: int, k: int,
              value: float | np.floating[Any], place: int) -> int:
    """(value, place) among the `filled` best kept so far (values[:filled], best first), at most
    k of them; a value equal to one kept goes after it (ties by arrival). Returns how many are
    kept now. An insertion: k is a handful, and a stream's values mostly miss the cut."""
    if filled < k:
        at = filled
        filled += 1
    elif k > 0 and value > values[k - 1]:
        at = k - 1
    else:
        return filled
    while at > 0 and values[at - 1] < value:
        values[at], places[at] = values[at - 1], places[at - 1]
        at -= 1
    values[at], places[at] = value, place
    return filled
