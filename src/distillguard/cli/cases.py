"""``distillguard cases``: escalation packages, analyst labels, criteria, and detector validation via the hub."""

from __future__ import annotations

import os
from pathlib import Path

import click
import orjson

from distillguard.cli._common import EXIT_BAD_INPUT, EXIT_USAGE, console, fail


@click.group()
def command() -> None:
    """Cases and escalation: verify packages, export labels, check criteria, validate detectors across the group."""


@command.command("verify")
@click.argument("package", type=click.Path(exists=True, dir_okay=False))
def verify_command(package: str) -> None:
    """Re-hash every artefact of an escalation package against its manifest."""
    from distillguard.cases.package import sha256_file, verify_package

    problems = verify_package(package)
    for p in problems:
        console.print(f"  {p}", markup=False)
    if problems:
        fail(f"{package}: {len(problems)} problem(s)", EXIT_BAD_INPUT)
    console.print(f"{package}: every artefact matches its manifest (zip sha256 {sha256_file(Path(package))})")


@command.command("labels")
@click.option("--decisions", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the console's decisions file (JSON Lines)")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="labels.csv for `distillguard eval`")
def labels_command(decisions: str, out: str) -> None:
    """Analysts' decisions as labels: confirm = attack, dismiss = benign."""
    from distillguard.cases.labels import labels_csv
    from distillguard.decide.analyst import DecisionsError, load_decisions

    try:
        text = labels_csv(load_decisions(decisions))
    except DecisionsError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    Path(out).write_text(text)
    console.print(f"{out}: {text.count(chr(10)) - 1} labelled account(s)")


@command.command("criteria")
@click.argument("policy", type=click.Path(exists=True, dir_okay=False))
def criteria_command(policy: str) -> None:
    """Check an escalation criteria policy file."""
    from distillguard.cases.criteria import CriteriaError, load_policy

    try:
        p = load_policy(policy)
    except CriteriaError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    for c in p.criteria:
        console.print(f"  {c.name} ({c.kind}, min {c.min:g})", markup=False)
    console.print(f"{policy}: {len(p.criteria)} criteria, {p.require} required")


def _hub_options(f):
    for option in reversed([
        click.option("--hub", required=True, help="TAXII discovery URL of the sharing hub"),
        click.option("--collection", required=True),
        click.option("--user", required=True, help="this member's hub user"),
        click.option("--password-env", default="DG_PASSWORD", show_default=True),
        click.option("--sign-key", type=click.Path(exists=True, dir_okay=False), required=True,
                     help="this member's Ed25519 key (intel keygen)"),
    ]):
        f = option(f)
    return f


def _client(hub: str, collection: str, user: str, password_env: str):
    from distillguard.intel.client import TaxiiClient

    password = os.environ.get(password_env)
    if not password:
        fail(f"set {password_env} to the hub password", EXIT_USAGE)
    return TaxiiClient(hub, collection, user, password)


@command.command("publish-detector")
@_hub_options
@click.option("--name", required=True)
@click.option("--version", "version", required=True)
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              help="detector artifact (default: the shipped one)")
@click.option("--detections", type=click.Path(exists=True, file_okay=False),
              help="a detect output: its campaigns' behaviour becomes the Sigma rules")
def publish_detector(hub: str, collection: str, user: str, password_env: str, sign_key: str, name: str,
                     version: str, model_path: str | None, detections: str | None) -> None:
    """Publish a detector (Sigma rules + model artifact with a model card) to the hub."""
    from distillguard.cases.validation import detector_objects, shipped_artifact, sigma_rules
    from distillguard.intel.client import State, TaxiiClientError
    from distillguard.intel.signing import load_private

    rules = sigma_rules(Path(detections) if detections else None, name)
    objects = detector_objects(user, load_private(sign_key), name, version, model_path or shipped_artifact(), rules)
    try:
        counts = _client(hub, collection, user, password_env).publish(objects, State(None))
    except TaxiiClientError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    console.print(f"detector {name} {version}: {counts}; id {objects[-1]['id']}")


@command.command("validate")
@_hub_options
@click.option("--detector", "detector_id", help="indicator id of the detector (default: every detector pulled)")
@click.option("--store", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--labels", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
def validate_command(hub: str, collection: str, user: str, password_env: str, sign_key: str, detector_id: str | None,
                     store: str, labels: str, out: str) -> None:
    """Run published detectors on this member's labelled traffic and publish validation reports (metrics only)."""
    from distillguard.cases.validation import detectors_in, run_validation, validation_objects
    from distillguard.intel.client import State, TaxiiClientError
    from distillguard.intel.signing import load_private

    key = load_private(sign_key)
    client = _client(hub, collection, user, password_env)
    try:
        pulled = client.pull(State(None), None)
        detectors = [d for d in detectors_in(pulled.accepted) if detector_id in (None, d["id"])]
        if not detectors:
            fail("no detector found on the hub", EXIT_BAD_INPUT)
        for det in detectors:
            metrics = run_validation(det, Path(store), Path(labels), Path(out) / det["id"])
            counts = client.publish(validation_objects(user, key, det, metrics), State(None))
            console.print(f"{det['name']}: ROC-AUC {metrics.get('roc_auc')}, flagged FPR {metrics.get('flagged_fpr')}"
                          f" -> {counts}")
    except TaxiiClientError as exc:
        fail(str(exc), EXIT_BAD_INPUT)


@command.command("pull")
@click.option("--hub", required=True)
@click.option("--collection", required=True)
@click.option("--user", required=True)
@click.option("--password-env", default="DG_PASSWORD", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="bundle file for console --validations")
def pull_command(hub: str, collection: str, user: str, password_env: str, out: str) -> None:
    """Pull detectors and validation reports from the hub into a bundle file."""
    from distillguard.intel.client import State, TaxiiClientError

    try:
        pulled = _client(hub, collection, user, password_env).pull(State(None), None)
    except TaxiiClientError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    Path(out).write_bytes(orjson.dumps({"type": "bundle", "objects": pulled.accepted}))
    console.print(f"{out}: {len(pulled.accepted)} object(s)")
