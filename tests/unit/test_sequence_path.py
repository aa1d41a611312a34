"""A data set in the generic CSV format trains the sequential model and evaluates with it through the
same functions `interests train-cf` and `interests eval` run, with their defaults."""

from __future__ import annotations

from pathlib import Path

from cf.artifact import CFArtifact
from cf.decay import DecayConfig
from cf.factors import ALSParams
from cf.weights import EventWeights
from encoders import Encoder
from streams.offline.datasets import load_dataset
from streams.offline.evaluation import item_vectors, run_eval
from streams.offline.train_cf import summary, train_cf
from tests.unit.test_bench_state import ITEMS


def _toy_folder(folder: Path) -> Path:
    """Twelve users who each walk the catalog in order from their own start: a sequence to learn."""
    (folder / "items.csv").write_text("item_id,title,text,tags\n" + "".join(
        f"{i},{t.split('|')[0]},{t.split('|')[1]},\n" for i, t in ITEMS.items()))
    ids = sorted(ITEMS)
    rows = [f"u{u},{ids[(u + t) % len(ids)]},{1000 * u + 10 * t},4,rate\n"
            for u in range(12) for t in range(5)]
    (folder / "interactions.csv").write_text("user_id,item_id,timestamp,rating,type\n" + "".join(rows))
    return folder


def test_a_csv_folder_trains_the_artifact_with_its_sequential_model(tmp_path: Path, encoder: Encoder) -> None:
    dataset = load_dataset(str(_toy_folder(tmp_path)))
    decay = DecayConfig(half_life_s=86400.0)
    checkpoints = tmp_path / "checkpoint"
    artifact = train_cf(dataset, item_vectors(encoder, dataset), encoder.version, EventWeights(), decay,
                        ALSParams(factors=4, iterations=3), progress=False, checkpoints=checkpoints)
    assert artifact.sequence is not None and artifact.sequence.space == encoder.version
    assert (checkpoints / "sequence.npz").exists()  # each better epoch was written while it trained
    loaded = CFArtifact.load(artifact.save(tmp_path / "cf"))
    assert loaded.sequence is not None and loaded.version == artifact.version
    assert "+seq-" in loaded.version and "seq model seq-" in summary(artifact, tmp_path / "cf")
    fits = artifact.report["sequence_fits"]
    assert isinstance(fits, list) and len(fits) == 2  # on the training events, then on all of them


def test_eval_reports_the_sequential_model_beside_the_blend_without_it(tmp_path: Path,
                                                                      encoder: Encoder) -> None:
    dataset = load_dataset(str(_toy_folder(tmp_path)))
    report = run_eval(dataset, encoder, EventWeights(), DecayConfig(half_life_s=86400.0), protocol="loo",
                      train=ALSParams(factors=4, iterations=3), progress=False)
    methods = report["methods"]
    assert isinstance(methods, dict)
    for name in ("seq", "hybrid_without_seq", "hybrid"):
        assert methods[name]["n"] == 12  # every user's last event
    assert report["seq_fits"] and "hybrid_vs_without_seq" in report
    assert report["documents"] == {"source": "titles", "items_matched": 0, "interactions_matched": 0,
                                   "items": len(dataset.items), "interactions": len(dataset.interactions),
                                   "items_share": 0.0, "interactions_share": 0.0}
    without = run_eval(dataset, encoder, EventWeights(), DecayConfig(half_life_s=86400.0), protocol="loo",
                       train=ALSParams(factors=4, iterations=3), progress=False, sequence=None)
    assert not without["seq_fits"]
    assert without["methods"]["hybrid"]["hr"] == without["methods"]["hybrid_without_seq"]["hr"]  # type: ignore[index]
