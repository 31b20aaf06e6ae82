"""The detector bundle: which detectors run, the deployment's baselines, and the decision policy.

``Model.fit(features)`` measures the deployment's baselines on its own accounts (no labels needed);
``Model.record(features)`` gathers every detector's evidence into the :class:`distillguard.decide.Record`
that :func:`distillguard.decide.decide` turns into risk, verdicts and reasons. The artifact (gzipped JSON,
no pickle, versioned) holds the detector names, the decision policy (its family weights can be refitted on
labelled accounts by ``distillguard train``) and, optionally, baselines to score against when a deployment
has too little traffic of its own.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from distillguard.decide import DEFAULT_POLICY, DecisionPolicy, Record
from distillguard.detect.base import Detector, Features, build, rows
from distillguard.detect.baselines import Baselines
from distillguard.detect.detectors import DEFAULT_DETECTORS
from distillguard.detect.evidence import FAMILIES, Evidence, gather

ARTIFACT_FORMAT = 2
DEFAULT_ARTIFACT = "detector-v2.json"


@dataclass
class Model:
    detectors: tuple[str, ...] = DEFAULT_DETECTORS
    policy: DecisionPolicy = DEFAULT_POLICY
    baselines: Baselines = field(default_factory=Baselines)
    meta: dict[str, Any] = field(default_factory=dict)
    _plugins: dict[str, Detector] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in self.detectors:
            if name not in FAMILIES and name not in self._plugins:
                self._plugins[name] = build(name)

    # ---- fitting and scoring -------------------------------------------------------------------------------
    def fit(self, features: Features, labels: np.ndarray | None = None) -> Model:
        """Measure the deployment's baselines (and fit any plug-in detector) on its own accounts."""
        self.baselines = Baselines.fit(features)
        for detector in self._plugins.values():
            detector.fit(features, labels)
        return self

    def with_baselines(self, baselines: Baselines) -> Model:
        return replace(self, baselines=baselines, _plugins=dict(self._plugins))

    def evidence(self, features: Features) -> Evidence:
        evidence = gather(features, self.baselines)
        for family in list(evidence.families):
            if family not in self.detectors:
                del evidence.families[family]
        return evidence

    def record(self, features: Features, evidence: Evidence | None = None) -> Record:
        """The decision record of every account: family points, volume and a reason writer."""
        evidence = evidence or self.evidence(features)
        families = dict(evidence.families)
        for name, detector in self._plugins.items():
            families[name] = np.asarray(detector.score(features), dtype=np.float64) if rows(features) else np.zeros(0)
        plugins = self._plugins

        def explain(i: int) -> list[tuple[float, str]]:
            found = evidence.reasons(features, i, limit=8)
            for detector in plugins.values():
                found += detector.explain(features, i)
            return sorted(found, key=lambda x: -x[0])[:4]

        return Record(n=evidence.n, families=families, explain=explain)

    # ---- persistence ---------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"format": ARTIFACT_FORMAT, "detectors": list(self.detectors), "policy": self.policy.to_json(),
                "baselines": self.baselines.to_json() if self.baselines.table else None, "meta": self.meta}

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        path.write_bytes(gzip.compress(data, 9) if path.suffix == ".gz" else data)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "detector artifact") -> Model:
        if data.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"{where}: unsupported artifact format {data.get('format')!r} (this version reads "
                             f"{ARTIFACT_FORMAT}; retrain with `distillguard train`)")
        detectors = tuple(str(d) for d in data.get("detectors") or DEFAULT_DETECTORS)
        policy = DecisionPolicy.from_mapping(data.get("policy"), where)
        return cls(detectors, policy, Baselines.from_json(data.get("baselines")), dict(data.get("meta") or {}))

    @classmethod
    def load(cls, path: Path | str | None = None) -> Model:
        """Load an artifact (the one shipped in ``distillguard/data/models`` by default)."""
        if path is None:
            raw = resources.files("distillguard").joinpath("data", "models", DEFAULT_ARTIFACT).read_bytes()
        else:
            raw = Path(path).read_bytes()
        where = str(path or DEFAULT_ARTIFACT)
        try:
            data = orjson.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"{where}: not a detector artifact ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{where}: not a detector artifact (expected a JSON object)")
        return cls.from_json(data, where)


def model_with(detectors: Sequence[str] | None = None, policy: DecisionPolicy | None = None) -> Model:
    """The shipped model with another detector list or policy (configuration builds detectors by name)."""
    base = Model.load()
    return Model(tuple(detectors) if detectors else base.detectors, policy or base.policy, base.baselines,
                 dict(base.meta))
