"""``distillguard intel``: keys, STIX export, matching, the TAXII hub, publish and pull."""

from __future__ import annotations

import csv
import os
import uuid
from pathlib import Path

import click
import httpx
import orjson

from distillguard.cli._common import EXIT_USAGE, console, fail
from distillguard.cli.gateway import server_limit_options, server_limits


@click.group("intel")
def command() -> None:
    """Share distillation intel with a group of providers (STIX 2.1 over TAXII 2.1)."""


@command.command()
@click.option("--member", required=True, help="This provider's member name in the sharing group.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--group-key", is_flag=True, help="Also create a new group key (one member does this, then shares it).")
def keygen(member: str, out_dir: Path, group_key: bool) -> None:
    """Create MEMBER.key / MEMBER.pub (Ed25519) and optionally group.key (HMAC/MinHash key)."""
    from distillguard.intel.privacy import new_group_key
    from distillguard.intel.signing import generate_key, private_pem, public_pem

    out_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    private = out_dir / f"{member}.key"
    if private.exists():
        fail(f"{private} exists; refusing to overwrite a signing key")
    private.write_bytes(private_pem(key))
    os.chmod(private, 0o600)
    (out_dir / f"{member}.pub").write_bytes(public_pem(key.public_key()))
    if group_key:
        path = out_dir / "group.key"
        if path.exists():
            fail(f"{path} exists; refusing to overwrite the group key")
        path.write_text(new_group_key().hex() + "\n")
        os.chmod(path, 0o600)
    console.print(f"wrote keys for {member} in {out_dir}")


@command.command()
@click.option("--password-env", default="DG_PASSWORD", show_default=True, help="Read the password from this variable.")
def passwd(password_env: str) -> None:
    """Print a password hash for a member entry in the hub config."""
    from distillguard.intel.hub.config import hash_password

    password = os.environ.get(password_env)
    if not password:
        fail(f"set {password_env} to the password to hash", EXIT_USAGE)
    click.echo(hash_password(password))


@command.command()
@click.option("--detections", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Output directory of `distillguard detect` (campaigns.json).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--member", required=True)
@click.option("--group-key", "group_key_path", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--sign-key", type=click.Path(exists=True, dir_okay=False), help="Ed25519 key from `intel keygen`.")
@click.option("--tlp", type=click.Choice(["clear", "green", "amber", "amber+strict", "red"]), default="amber",
              show_default=True)
@click.option("--store", "store_dir", type=click.Path(exists=True, file_okay=False),
              help="Local store (required unless --no-privacy-guard): infrastructure and identifiers also used by "
              "accounts that are in no exported campaign and not restricted by the local detector (accounts.csv) "
              "are withheld.")
@click.option("--no-privacy-guard", "no_guard", is_flag=True,
              help="Export without --store: campaigns' infrastructure and identifiers are shared even where your own "
              "benign customers use them (peers matching them will throttle those customers). Not recommended.")
@click.option("--min-score", type=float, default=0.0, show_default=True)
def export(detections: Path, out_path: Path, member: str, group_key_path: str, sign_key: str | None, tlp: str,
           store_dir: str | None, no_guard: bool, min_score: float) -> None:
    """Turn detected campaigns into a validated, signed STIX 2.1 bundle.

    The privacy guard is on by default: --store is required, and what the store's benign customers also use is
    withheld. Only --no-privacy-guard exports without it.
    """
    from stix2validator import ValidationOptions, validate_string

    from distillguard.intel.export import (
        ExportError,
        ExportOptions,
        benign_exclusions,
        detector_flagged,
        export_bundle,
        load_campaigns,
    )
    from distillguard.intel.privacy import GroupKeyError, load_group_key
    from distillguard.intel.signing import SignatureError, load_private

    if store_dir and no_guard:
        fail("--store and --no-privacy-guard exclude each other", EXIT_USAGE)
    if not store_dir and not no_guard:
        fail("--store is required: the privacy guard withholds infrastructure and identifiers that your benign "
             "customers also use (see docs/intel.md, Privacy); --no-privacy-guard exports without it", EXIT_USAGE)
    if no_guard:
        console.print("[yellow]warning:[/] --no-privacy-guard: infrastructure and identifiers are exported even where "
                      "your benign customers use them")
    try:
        doc = load_campaigns(detections / "campaigns.json")
        key = load_group_key(group_key_path)
        signer = load_private(sign_key) if sign_key else None
    except (ExportError, GroupKeyError, SignatureError) as exc:
        fail(str(exc))
    exclusions = None
    if store_dir:
        from distillguard.store import Store

        flagged = {a for c in doc["campaigns"] for a in c.get("accounts", [])}
        if (detections / "accounts.csv").exists():  # restricted by our own detector: not a benign customer
            try:
                flagged |= detector_flagged(detections / "accounts.csv")
            except ExportError as exc:
                fail(str(exc))
        exclusions = benign_exclusions(Store.open(store_dir, create=False).connect(), flagged)
    bundle = export_bundle(doc, ExportOptions(member=member, group_key=key, signing_key=signer, tlp=tlp,
                                              min_score=min_score, exclusions=exclusions))
    text = orjson.dumps(bundle, option=orjson.OPT_INDENT_2).decode()
    result = validate_string(text, ValidationOptions(strict=True))  # as `stix2_validator --strict`
    if not result.is_valid:
        fail(f"internal error: bundle fails stix2-validator: {[str(e) for e in result.errors][:3]}")
    out_path.write_text(text)
    console.print(f"{len(bundle['objects'])} STIX objects for {len(doc['campaigns'])} campaigns -> {out_path}")


def _read_bundles(paths: tuple[str, ...]) -> list[dict]:
    out = []
    for path in paths:
        try:
            out.append(orjson.loads(Path(path).read_bytes()))
        except orjson.JSONDecodeError as exc:
            fail(f"{path}: not JSON ({exc.msg})")
    return out


@command.command("match")
@click.option("--store", "store_dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--bundle", "bundles", type=click.Path(exists=True, dir_okay=False), multiple=True, required=True,
              help="Pulled or exported STIX bundle; repeatable, and further files may follow as arguments "
              "(--bundle pulled/*.json).")
@click.option("--group-key", "group_key_path", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--group", "group_file", type=click.Path(exists=True, dir_okay=False),
              help="Group keyring: objects whose signatures do not verify are dropped.")
@click.option("--local", "local_csv", type=click.Path(exists=True, dir_okay=False),
              help="accounts.csv of our own detection: accounts at watch or above are marked in the local_detection "
              "column and, with --sightings, reported to peers as independent local detections. It never "
              "corroborates: one member's intel raises risk up to intel_max_risk and no further, in every path; "
              "only k distinct members corroborate.")
@click.option("-k", "k", type=int, default=2, show_default=True,
              help="Distinct members needed to corroborate (indicators, or sightings with a local detection).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--sightings", "sightings_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write matches as STIX sightings (needs --member).")
@click.option("--member")
@click.option("--sign-key", type=click.Path(exists=True, dir_okay=False))
@click.argument("more_bundles", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def match_cmd(store_dir: str, bundles: tuple[str, ...], group_key_path: str, group_file: str | None,
              local_csv: str | None, k: int, out_path: Path, sightings_path: Path | None, member: str | None,
              sign_key: str | None, more_bundles: tuple[str, ...]) -> None:
    """Match pulled intel against local traffic: per-account intel score, reasons, corroboration.

    Bundles are given with --bundle (repeatable) and as further arguments: ``--bundle pulled/*.json``."""
    bundles = bundles + more_bundles
    import pyarrow.csv as pacsv

    from distillguard.intel.client import TaxiiClientError, load_keyring, reject_reason
    from distillguard.intel.indicators import objects_of
    from distillguard.intel.match import MatchOptions, match
    from distillguard.intel.privacy import GroupKeyError, load_group_key
    from distillguard.intel.signing import SignatureError, load_private
    from distillguard.store import Store

    if sightings_path and not member:
        fail("--sightings needs --member", EXIT_USAGE)
    try:
        key = load_group_key(group_key_path)
        keyring = load_keyring(group_file) if group_file else None
        signer = load_private(sign_key) if sign_key else None
    except (GroupKeyError, TaxiiClientError, SignatureError) as exc:
        fail(str(exc))
    objects = objects_of(_read_bundles(bundles))
    kept = [o for o in objects if reject_reason(o, keyring) is None]
    if len(kept) < len(objects):
        console.print(f"[yellow]dropped {len(objects) - len(kept)} objects that failed signature checks[/]")
    local = _local_flagged(Path(local_csv)) if local_csv else set()
    con = Store.open(store_dir, create=False).connect()
    result = match(con, kept, key, local, MatchOptions(k=k))
    pacsv.write_csv(result.table, out_path)
    console.print(f"{result.table.num_rows} accounts matched, "
                  f"{sum(result.table.column('corroborated').to_pylist())} corroborated -> {out_path}")
    if sightings_path and member:
        from distillguard.intel.sightings import sightings

        objs = sightings(result, member, signer, local)
        sightings_path.write_bytes(orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                                 "objects": objs}, option=orjson.OPT_INDENT_2))


def _local_flagged(path: Path) -> set[str]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"account_id", "verdict"} <= set(reader.fieldnames):
            fail(f"{path}, line 1: header needs account_id and verdict")
        return {row["account_id"] for row in reader if row["verdict"] in ("watch", "throttle", "block")}


@command.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8650, show_default=True)
@click.option("--db", "database", help="Overrides the config's database: a SQLite path or a PostgreSQL URL "
              "(postgresql://user:password@host/db; needs the 'postgres' extra).")
@server_limit_options(max_connections=1024, per_client=64)
def serve(config_path: str, host: str, port: int, database: str | None, **limit_opts) -> None:
    """Run the sharing group's TAXII 2.1 hub."""
    from distillguard.gateway import server
    from distillguard.intel.hub import create_app, load_config, open_db

    limits = server_limits(limit_opts)
    from distillguard.intel.hub.config import ConfigError
    from distillguard.intel.hub.db import redact

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        fail(str(exc))
    if database:
        config.database = database
    try:
        db = open_db(config.database)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"TAXII 2.1 hub on http://{host}:{port}/taxii2/ (database {redact(config.database)})")
    # read deadlines and connection limits: distillguard.gateway.server (uvicorn has no head/body timeout)
    server.run(create_app(config, db), host, port, limits)


def _client_options(f: click.decorators.FC) -> click.decorators.FC:
    for option in reversed([
        click.option("--url", required=True, help="TAXII discovery URL, e.g. http://hub:8650/taxii2/"),
        click.option("--collection", required=True),
        click.option("--user", required=True),
        click.option("--password-env", default="DG_TAXII_PASSWORD", show_default=True),
        click.option("--state", "state_path", type=click.Path(dir_okay=False), required=True,
                     help="Remembers what was published / pulled."),
    ]):
        f = option(f)
    return f


def _client(url: str, collection: str, user: str, password_env: str):  # noqa: ANN202
    from distillguard.intel.client import TaxiiClient

    password = os.environ.get(password_env)
    if password is None:
        fail(f"set {password_env} to the TAXII password", EXIT_USAGE)
    return TaxiiClient(url, collection, user, password)


@command.command()
@_client_options
@click.option("--bundle", "bundles", type=click.Path(exists=True, dir_okay=False), multiple=True, required=True)
def publish(url: str, collection: str, user: str, password_env: str, state_path: str, bundles: tuple[str, ...]) -> None:
    """Post new or changed objects of BUNDLE(s) to the hub."""
    from distillguard.intel.client import State, TaxiiClientError
    from distillguard.intel.indicators import objects_of

    objects = objects_of(_read_bundles(bundles))
    try:
        client = _client(url, collection, user, password_env)
        counts = client.publish(objects, State.load(state_path))
    except (TaxiiClientError, OSError) as exc:
        fail(str(exc))
    except httpx.HTTPError as exc:  # hub down, refused, timed out
        fail(f"{url}: cannot reach the TAXII hub ({type(exc).__name__}: {exc})")
    console.print(", ".join(f"{k} {v}" for k, v in counts.items()))
    for failure in client.failures[:10]:
        console.print(f"[red]rejected[/] {failure}")
    if counts["failed"]:
        raise click.exceptions.Exit(1)


@command.command()
@_client_options
@click.option("--group", "group_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Group keyring (members' public keys).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
def pull(url: str, collection: str, user: str, password_env: str, state_path: str, group_file: str,
         out_dir: Path) -> None:
    """Fetch objects added since the last pull; verified objects go to OUT/pulled-<time>.json."""
    from datetime import UTC, datetime

    from distillguard.intel.client import State, TaxiiClientError, load_keyring

    try:
        keyring = load_keyring(group_file)
        result = _client(url, collection, user, password_env).pull(State.load(state_path), keyring)
    except (TaxiiClientError, OSError) as exc:
        fail(str(exc))
    except httpx.HTTPError as exc:  # hub down, refused, timed out
        fail(f"{url}: cannot reach the TAXII hub ({type(exc).__name__}: {exc})")
    out_dir.mkdir(parents=True, exist_ok=True)
    if result.accepted:
        path = out_dir / f"pulled-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}.json"
        path.write_bytes(orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                       "objects": result.accepted}))
        console.print(f"{len(result.accepted)} objects -> {path}")
    else:
        console.print("nothing new")
    for reason in result.rejected[:10]:
        console.print(f"[red]rejected[/] {reason}")
    if result.rejected:
        raise click.exceptions.Exit(1)
