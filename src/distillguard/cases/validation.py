"""Cross-company validation of detectors, through the sharing group's TAXII hub; no traffic leaves anyone.

1. A member *publishes a detector*: one signed STIX ``indicator`` (``pattern_type: sigma``; the pattern is its
   Sigma rules) whose distillguard extension carries the model artifact (base64, with its SHA-256), its version
   and a model card (:func:`detector_objects`).
2. Another member pulls it, checks the artifact's hash, runs it on its own labelled traffic (``distillguard
   detect --model`` then ``distillguard eval --labels``) and *publishes a validation report*: a signed ``note``
   whose extension carries the metrics, and an ``opinion`` (agree/disagree with the detector's claim, by the
   group's targets), both referring to the detector (:func:`validation_objects`).
3. Everyone sees the matrix detector x member (:func:`load_matrix`, the console's *Detector validations* page).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import stix2

from distillguard.errors import DistillguardError
from distillguard.intel.export import member_identity_id
from distillguard.intel.extension import EXTENSION_ID, ext
from distillguard.intel.refdata import tlp_markings
from distillguard.intel.signing import sign

METRICS = ("accounts", "attack_accounts", "benign_accounts", "roc_auc", "recall_at_fpr_1pct", "recall_at_fpr_0.1pct",
           "flagged_recall", "flagged_fpr", "benign_blocked", "campaign_ari")


class ValidationError(DistillguardError, ValueError):
    pass


def _identity(member: str, mark: list[str]) -> stix2.Identity:
    return stix2.Identity(id=member_identity_id(member), name=member, identity_class="organization",
                          sectors=["technology"], created="2026-01-01T00:00:00Z", modified="2026-01-01T00:00:00Z",
                          description="LLM API provider, member of a distillation intel sharing group.",
                          object_marking_refs=mark)


def model_card(name: str, version: str, artifact: dict[str, Any], notes: str = "") -> str:
    meta = artifact.get("meta") or {}
    lines = [f"# Detector {name} {version}", "",
             "Intended use: flag LLM API accounts harvesting outputs for distillation (distillguard decision stage).",
             f"Detectors (evidence families): {', '.join(artifact.get('detectors') or [])}.",
             f"Decision policy overrides: {orjson.dumps(artifact.get('policy') or {}).decode()}.",
             f"Trained: {meta.get('trained', 'not refitted (shipped defaults)')}; "
             f"accounts {meta.get('accounts', '-')}, "
             f"attackers {meta.get('attack_accounts', '-')}; on {', '.join(meta.get('trained_on') or []) or '-'}.",
             "Limits: baselines are refitted on each deployment's own traffic; family weights are what travels.",
             "Evaluate with: distillguard detect --model ARTIFACT; "
             "distillguard eval --labels labels.csv --detections OUT."]
    if notes:
        lines += ["", notes]
    return "\n".join(lines)


def detector_objects(member: str, key: Any, name: str, version: str, artifact_path: str | Path, sigma: str,
                     notes: str = "", tlp: str = "green") -> list[dict[str, Any]]:
    """The signed objects that publish a detector: the member's identity and the detector indicator."""
    raw = Path(artifact_path).read_bytes()
    try:
        artifact = orjson.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"{artifact_path}: not a detector artifact ({exc})") from None
    mark = [tlp_markings()[tlp]["id"]]
    me = _identity(member, mark)
    indicator = stix2.Indicator(
        name=f"distillguard detector {name} {version}", pattern_type="sigma", pattern=sigma,
        pattern_version="2.0", indicator_types=["anomalous-activity"], valid_from=datetime.now(UTC),
        description=f"Detector {name} {version}: Sigma rules for the request pattern, and the decision model "
                    f"as a versioned artifact (SHA-256 {hashlib.sha256(raw).hexdigest()}).",
        created_by_ref=me.id, object_marking_refs=mark,
        extensions={EXTENSION_ID: {"extension_type": "property-extension", "detector": {
            "name": name, "version": version, "artifact_sha256": hashlib.sha256(raw).hexdigest(),
            "artifact_b64": base64.b64encode(raw).decode(), "model_card": model_card(name, version, artifact, notes)}}},
        allow_custom=True)
    out = [orjson.loads(o.serialize()) for o in (me, indicator)]
    return [sign(o, key, member) for o in out] if key is not None else out


def detector_artifact(indicator: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The model artifact a detector indicator carries, after checking its SHA-256."""
    info = ext(indicator).get("detector")
    if not isinstance(info, dict):
        raise ValidationError(f"{indicator.get('id')}: not a distillguard detector")
    raw = base64.b64decode(info["artifact_b64"])
    if hashlib.sha256(raw).hexdigest() != info["artifact_sha256"]:
        raise ValidationError(f"{indicator.get('id')}: artifact does not match its SHA-256")
    return raw, info


def detectors_in(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("type") == "indicator" and isinstance(ext(o).get("detector"), dict)]


def opinion_of(metrics: dict[str, Any], targets: dict[str, float] | None = None) -> str:
    """The validator's opinion of the detector's claim, by the group's targets (recall and false positives)."""
    t = {"roc_auc": 0.95, "flagged_fpr": 0.01, **(targets or {})}
    auc, fpr = metrics.get("roc_auc"), metrics.get("flagged_fpr")
    if auc is None or fpr is None or auc != auc or fpr != fpr:
        return "neutral"
    if auc >= t["roc_auc"] and fpr <= t["flagged_fpr"]:
        return "strongly-agree" if auc >= 0.99 else "agree"
    return "strongly-disagree" if auc < 0.8 else "disagree"


def validation_objects(member: str, key: Any, detector: dict[str, Any], metrics: dict[str, Any],
                       tlp: str = "green", notes: str = "") -> list[dict[str, Any]]:
    """A signed validation report (note + opinion) of ``detector`` by ``member``, carrying only metrics."""
    mark = [tlp_markings()[tlp]["id"]]
    me = _identity(member, mark)
    info = ext(detector)["detector"]
    figures = {k: (None if isinstance(metrics.get(k), float) and metrics[k] != metrics[k] else metrics.get(k))
               for k in METRICS if k in metrics}
    text = "\n".join(f"{k}: {v}" for k, v in figures.items())
    note = stix2.Note(
        abstract=f"Validation of detector {info['name']} {info['version']} by {member}",
        content=f"{member} ran detector {info['name']} {info['version']} (artifact SHA-256 "
                f"{info['artifact_sha256']}) on its own labelled traffic.\n{text}" + (f"\n{notes}" if notes else ""),
        authors=[member], object_refs=[detector["id"]], created_by_ref=me.id, object_marking_refs=mark,
        extensions={EXTENSION_ID: {"extension_type": "property-extension", "validation": {
            "detector_id": detector["id"], "detector_name": info["name"], "detector_version": info["version"],
            "artifact_sha256": info["artifact_sha256"], "metrics": figures}}}, allow_custom=True)
    opinion = stix2.Opinion(opinion=opinion_of(figures), object_refs=[detector["id"], note.id], authors=[member],
                            explanation=f"ROC-AUC {figures.get('roc_auc')}, flagged FPR {figures.get('flagged_fpr')} "
                                        f"on {figures.get('accounts')} labelled accounts at {member}",
                            created_by_ref=me.id, object_marking_refs=mark)
    out = [orjson.loads(o.serialize()) for o in (me, note, opinion)]
    return [sign(o, key, member) for o in out] if key is not None else out


def shipped_artifact() -> Path:
    from importlib import resources

    from distillguard.detect.model import DEFAULT_ARTIFACT

    return Path(str(resources.files("distillguard").joinpath("data", "models", DEFAULT_ARTIFACT)))


def sigma_rules(detections: Path | None, name: str) -> str:
    """Sigma correlation rules from a detect run's campaigns (their behaviour, loosened), or one generic rule."""
    from distillguard.intel import sigma

    docs = []
    if detections is not None and (detections / "campaigns.json").exists():
        for camp in orjson.loads((detections / "campaigns.json").read_bytes()).get("campaigns", []):
            docs.append(sigma.correlation_rule(f"{name}_{camp['id']}", sigma.thresholds(camp.get("behaviour") or {})))
    if not docs:
        docs.append(sigma.correlation_rule(name, {"median_max_tokens_min": 4096, "single_turn_share_min": 0.8,
                                                  "cot_share_min": 0.5}))
    return "---\n".join(docs)


def run_validation(detector: dict[str, Any], store: Path, labels: Path, out: Path) -> dict[str, Any]:
    """Run a published detector on this member's store and score it on this member's labels: the metrics."""
    from distillguard.detect.model import Model
    from distillguard.evaluation.external import load_labels, score_detections
    from distillguard.pipeline import run_detection
    from distillguard.store import Store

    raw, _ = detector_artifact(detector)
    out.mkdir(parents=True, exist_ok=True)
    (out / "detector.json").write_bytes(raw)
    run_detection(Store.open(store, create=False), out / "detections", model=Model.load(out / "detector.json"))
    metrics = score_detections(load_labels(labels), out / "detections")
    (out / "metrics.json").write_bytes(orjson.dumps(metrics, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return metrics


def matrix(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (detector, validating member): the latest report's metrics and opinion."""
    names = {o["id"]: o.get("name", o["id"]) for o in objects if o.get("type") == "identity"}
    detectors = {o["id"]: o for o in detectors_in(objects)}
    opinions = {ref: o.get("opinion") for o in objects if o.get("type") == "opinion" for ref in o.get("object_refs", [])
                if ref.startswith("note--")}
    rows: dict[tuple[str, Any], dict[str, Any]] = {}  # (detector id, validator: an identity's name or its id)
    for o in sorted((o for o in objects if o.get("type") == "note" and ext(o).get("validation")),
                    key=lambda o: o.get("modified") or o.get("created") or ""):
        v = ext(o)["validation"]
        det = detectors.get(v["detector_id"])
        validator = names.get(o.get("created_by_ref"), o.get("created_by_ref"))
        rows[(v["detector_id"], validator)] = {
            "detector": v["detector_name"], "version": v["detector_version"], "detector_id": v["detector_id"],
            "publisher": names.get(det.get("created_by_ref"), det.get("created_by_ref")) if det else "?",
            "validator": validator, "opinion": opinions.get(o["id"], ""), "note_id": o["id"],
            **{k: v["metrics"].get(k) for k in METRICS}}
    return sorted(rows.values(), key=lambda r: (r["detector"], r["version"], r["validator"]))


def load_matrix(path: str | Path) -> list[dict[str, Any]]:
    """:func:`matrix` of a bundle file or a JSON list of objects (as pulled from the hub)."""
    doc = orjson.loads(Path(path).read_bytes())
    objects = doc.get("objects", []) if isinstance(doc, dict) else doc
    return matrix(objects)
