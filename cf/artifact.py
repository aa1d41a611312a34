"""The collaborative-filtering artifact `interests train-cf` writes and workers load: the factor
model (`factors.npz`, `model.json`), the sequential model when trained (`sequence.npz`,
`sequence.json`) and the hybrid's fitted blend (`blend.json`), in one folder. Plain arrays and
JSON only: nothing is unpickled."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cf.factors import FactorModel
from cf.hybrid import BlendPolicy
from cf.sequence import SequenceModel


@dataclass(frozen=True)
class CFArtifact:
    model: FactorModel
    policy: BlendPolicy
    report: dict[str, object] = field(default_factory=dict)  # how it was trained and validated
    sequence: SequenceModel | None = None

    @property
    def version(self) -> str:
        seq = "" if self.sequence is None else f"+{self.sequence.version}"
        return f"{self.model.version}{seq}"

    def save(self, folder: Path) -> Path:
        self.model.save(folder)
        if self.sequence is not None:
            self.sequence.save(folder)
        else:
            for stale in ("sequence.json", "sequence.npz"):  # an older artifact's, in the same folder
                (folder / stale).unlink(missing_ok=True)
        (folder / "blend.json").write_text(json.dumps(
            {"policy": self.policy.to_json(), "report": self.report}, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> CFArtifact:
        model = FactorModel.load(folder)
        blend = json.loads((folder / "blend.json").read_text())
        sequence = SequenceModel.load(folder) if SequenceModel.present_in(folder) else None
        return cls(model, BlendPolicy.from_json(blend["policy"]), blend.get("report", {}), sequence)
