"""A new encoder version: user states are re-based from their history, stale items are found."""

from __future__ import annotations

import numpy as np

from cf.batch import REBASE_ITEMS, Interaction, apply_interactions, rebase
from cf.catalog import ItemCatalog
from cf.decay import DecayConfig
from cf.state import UserState
from streams.catalog_replica import CatalogReplica
from streams.metrics import Metrics
from streams.records import item_vector
from streams.settings import Settings


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_a_state_of_another_space_is_rebuilt_from_its_latest_items() -> None:
    new = {"a": _unit(1, 0, 0), "b": _unit(0, 1, 0)}
    old = UserState(vector=_unit(0, 0, 1) * 5, updated_ms=77, events=9, weight_sum=5.0,
                    history=("gone", "a", "b"), seen=("e1",), space="v1")
    out = rebase(old, "v2", new.get)
    np.testing.assert_allclose(out.vector, new["a"] + new["b"])  # "gone" has no v2 vector
    assert (out.space, out.weight_sum, out.events, out.updated_ms) == ("v2", 2.0, 2, 77)
    assert (out.history, out.seen) == (old.history, old.seen)
    assert rebase(out, "v2", new.get) is out  # same space: untouched
    many = UserState(vector=np.zeros(3, np.float32), updated_ms=0,
                     history=("a",) + ("b",) * REBASE_ITEMS, space="v1")
    np.testing.assert_allclose(rebase(many, "v2", new.get).vector, new["b"] * REBASE_ITEMS)  # latest R only


def test_apply_rebases_before_merging() -> None:
    new = {"a": _unit(1, 0, 0)}
    old = UserState(vector=_unit(0, 0, 1), updated_ms=0, events=1, weight_sum=1.0, history=("a",),
                    space="v1")
    x = Interaction("u", "e2", 0, 1.0, _unit(0, 1, 0), "c")
    out = apply_interactions({"u": old}, [x], DecayConfig(half_life_s=3600.0), 3, "v2", new.get)["u"]
    np.testing.assert_allclose(out.vector, _unit(1, 0, 0) + _unit(0, 1, 0), atol=1e-6)
    assert out.space == "v2" and out.history == ("a", "c")


def test_replica_marks_items_it_has_no_vector_for_as_stale() -> None:
    catalog = ItemCatalog(2)
    replica = CatalogReplica(Settings(), catalog, "v2", Metrics.create())
    v = _unit(1, 1)
    replica.apply_vector(b"x", item_vector("x", "X", v, "v1", 0, "X. Drama"))
    replica.apply_vector(b"y", item_vector("y", "Y", v, "v1", 0, "Y. Comedy"))
    replica.apply_vector(b"z", item_vector("z", "Z", v, "v1", 0))  # an old record: no document
    assert replica.stale == {"x": ("X", "X. Drama"), "y": ("Y", "Y. Comedy")}
    assert replica.unembeddable == 1
    replica.apply_vector(b"x", item_vector("x", "X", v, "v2", 0, "X. Drama"))  # re-embedded
    replica.apply_vector(b"y", None)  # deleted
    assert replica.stale == {} and "x" in catalog and "y" not in catalog
    replica.apply_vector(b"x", item_vector("x", "X", v, "v1", 0, "X. Drama"))  # the old version again
    assert replica.stale == {} and "x" in catalog  # ours stands: no back and forth
