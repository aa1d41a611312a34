"""The collaborative-filtering artifact `interests train-cf` writes and workers load: the factor
model (`factors.npz`, `model.json`) and the hybrid's fitted blend (`blend.json`), in one folder.
Plain arrays and JSON only: nothing is unpickled."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cf.factors import FactorModel
from cf.hybrid import BlendPolicy


@dataclass(frozen=True)
class CFArtifact:
    model: FactorModel
    policy: BlendPolicy
    report: dict[str, object] = field(default_factory=dict)  # how it was trained and validated

    @property
    def version(self) -> str:
        return self.model.version

    def save(self, folder: Path) -> Path:
        self.model.save(folder)
        (folder / "blend.json").write_text(json.dumps(
            {"policy": self.policy.to_json(), "report": self.report}, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> CFArtifact:
        model = FactorModel.load(folder)
        blend = json.loads((folder / "blend.json").read_text())
        return cls(model, BlendPolicy.from_json(blend["policy"]), blend.get("report", {}))
