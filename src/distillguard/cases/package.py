"""Escalation package: what a provider hands law enforcement, a regulator or a partner lab about one case.

One directory, zipped (``packages/<case>/<case>-<audience>-<stamp>.zip``)::

    summary.html  summary.pdf     evidence summary (PDF drawn with reportlab: pure Python, from PyPI)
    stix-bundle.json              STIX 2.1: the provider, the campaigns, their ATLAS techniques, the accounts
    exhibits/exhibit-NNN.json     sample exchanges per account, redacted (e-mails, keys, IPs, long numbers)
    custody.jsonl                 chain of custody: every recorded step, from the audit log, then this export
    case-uco.jsonld               provenance and custody in CASE/UCO (https://caseontology.org), JSON-LD
    manifest.json  SHA256SUMS     SHA-256 and size of every file above

The zip's own SHA-256 goes into the case's history (an ``export`` event) and the audit log, so the package a
recipient holds can be checked against the record; ``distillguard cases verify PACKAGE.zip`` re-hashes every
artefact against the manifest.
"""

from __future__ import annotations

import hashlib
import html
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from distillguard.attribution.campaign import ATLAS_NAMES, producer
from distillguard.cases.model import Case
from distillguard.console.data import redact

EXHIBITS_PER_ACCOUNT = 3
MAX_EXHIBIT_ACCOUNTS = 50
_KB = "urn:uuid:"


@dataclass
class PackageResult:
    directory: Path
    zip_path: Path
    sha256: str
    manifest: dict[str, Any]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_package(console: Any, case: Case, user: Any, audience: str, why: str, ip: str = "") -> PackageResult:
    """Write the package of ``case`` (see module doc), record it in the case and the audit log."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    name = f"{case.id}-{audience}-{stamp}"
    root = console.packages_dir / case.id / name
    (root / "exhibits").mkdir(parents=True, exist_ok=False)
    data = console.data
    accounts = console.case_accounts(case)
    campaigns = [data.campaigns[c] for c in case.campaigns if c in data.campaigns]
    ready, results = console.criteria(case)
    decisions = {a: console.in_force[a] for a in accounts if a in console.in_force}

    summary = _summary(case, campaigns, accounts, decisions, results, ready, audience, now, data)
    (root / "summary.html").write_text(_summary_html(summary), encoding="utf-8")
    _summary_pdf(summary, root / "summary.pdf")
    (root / "stix-bundle.json").write_bytes(orjson.dumps(_stix(case, campaigns, accounts, now),
                                                         option=orjson.OPT_INDENT_2))
    exhibits = []
    for i, account in enumerate(accounts[:MAX_EXHIBIT_ACCOUNTS], 1):
        rows = data.samples(account, EXHIBITS_PER_ACCOUNT)
        exhibit = {"exhibit": i, "account_id": account, "redaction": "e-mail addresses, key-like tokens, IP "
                   "addresses and numbers of 6+ digits masked; texts cut at 600 characters",
                   "exchanges": [{"id": r["id"], "ts": str(r["ts"]), "model": r["model"],
                                  "prompt": redact(r.get("user_text")), "response": redact(r.get("response_text")),
                                  "prompt_tokens": r.get("prompt_tokens"),
                                  "completion_tokens": r.get("completion_tokens")}
                                 for r in rows]}
        path = root / "exhibits" / f"exhibit-{i:03d}.json"
        path.write_bytes(orjson.dumps(exhibit, option=orjson.OPT_INDENT_2))
        exhibits.append(path)

    custody = _custody(console, case, accounts, user, audience, why, now)
    with open(root / "custody.jsonl", "wb") as handle:
        for step in custody:
            handle.write(orjson.dumps(step) + b"\n")

    files = sorted(p for p in root.rglob("*") if p.is_file())
    hashes = {str(p.relative_to(root)): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files}
    (root / "case-uco.jsonld").write_bytes(orjson.dumps(
        _case_uco(case, hashes, custody, user, audience, now), option=orjson.OPT_INDENT_2))
    hashes["case-uco.jsonld"] = {"sha256": sha256_file(root / "case-uco.jsonld"),
                                 "bytes": (root / "case-uco.jsonld").stat().st_size}
    manifest = {"package": name, "case": case.id, "audience": audience, "created": _iso(now),
                "created_by": user.name, "producer": producer(), "algorithm": "SHA-256", "files": hashes}
    (root / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    (root / "SHA256SUMS").write_text("".join(f"{v['sha256']}  {k}\n" for k, v in sorted(hashes.items())))

    zip_path = root.parent / f"{name}.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(q for q in root.rglob("*") if q.is_file()):
            zf.write(p, f"{name}/{p.relative_to(root)}")
    digest = sha256_file(zip_path)
    body = {"package": zip_path.name, "sha256": digest, "audience": audience,
            "manifest_sha256": sha256_file(root / "manifest.json"), "criteria_met": ready}
    console.db.add_case_events(
        [(case.id, user.name, "export", why, body)] + ([] if case.state == "escalated" or not ready else
                                                        [(case.id, user.name, "escalate", why, {
                                                            "criteria": [(r.criterion.name, r.met, r.measured)
                                                                         for r in results]})]),
        [(user.name, user.role, "export-package", f"case:{case.id}", why, body, ip)])
    return PackageResult(root, zip_path, digest, manifest)


def verify_package(zip_path: str | Path) -> list[str]:
    """Problems found re-hashing a package zip against its manifest (empty: every artefact matches)."""
    problems = []
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        top = names[0].split("/")[0]
        manifest = orjson.loads(zf.read(f"{top}/manifest.json"))
        for rel, meta in manifest["files"].items():
            member = f"{top}/{rel}"
            if member not in names:
                problems.append(f"{rel}: missing")
                continue
            if hashlib.sha256(zf.read(member)).hexdigest() != meta["sha256"]:
                problems.append(f"{rel}: SHA-256 does not match the manifest")
        listed = {f"{top}/{r}" for r in manifest["files"]} | {f"{top}/manifest.json", f"{top}/SHA256SUMS"}
        problems += [f"{n}: not in the manifest" for n in names if n not in listed and not n.endswith("/")]
    return problems


# ---- pieces -------------------------------------------------------------------------------------------------------
def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _summary(case: Case, campaigns: list[dict[str, Any]], accounts: list[str], decisions: dict[str, Any],
             results: list[Any], ready: bool, audience: str, now: datetime, data: Any) -> dict[str, Any]:
    exchanges = sum(int(c.get("exchanges") or 0) for c in campaigns)
    models: dict[str, int] = {}
    for c in campaigns:
        for m, n in (c.get("models") or {}).items():
            models[m] = models.get(m, 0) + int(n)
    return {
        "title": f"Escalation package {case.id}: {case.title}", "audience": audience, "created": _iso(now),
        "producer": producer(), "state": case.state,
        "facts": [("accounts", f"{len(accounts):,}"), ("campaigns", f"{len(campaigns):,}"),
                  ("exchanges harvested by the campaigns", f"{exchanges:,}"),
                  ("analyst decisions in force", f"{len(decisions):,}"),
                  ("models", ", ".join(f"{m} ({n:,})" for m, n in models.items()) or "-")],
        "criteria": [(r.criterion.name, "met" if r.met else "not met", r.measured) for r in results],
        "ready": ready,
        "campaigns": [{"id": c["id"], "accounts": len(c["accounts"]), "exchanges": int(c.get("exchanges") or 0),
                       "first_seen": c.get("first_seen"), "last_seen": c.get("last_seen"),
                       "capabilities": ", ".join(f"{k} {v:.0%}" for k, v in list((c.get("capabilities") or {})
                                                                                 .items())[:5]),
                       "atlas": ", ".join(f"{t} {ATLAS_NAMES.get(t, '')}" for t in c.get("atlas", [])),
                       "evidence": [e["detail"] for e in c.get("evidence", [])][:8]} for c in campaigns],
    }


def _summary_html(s: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in s["facts"])
    crit = "".join(f"<tr><td>{e(n)}</td><td>{e(m)}</td><td>{e(v)}</td></tr>" for n, m, v in s["criteria"])
    camps = "".join(
        f"<h3>{e(c['id'])}</h3><p>{c['accounts']:,} accounts, {c['exchanges']:,} exchanges, {e(str(c['first_seen']))}"
        f" to {e(str(c['last_seen']))}</p><p>Capabilities: {e(c['capabilities'])}</p><p>MITRE ATLAS: {e(c['atlas'])}"
        f"</p><ul>{''.join(f'<li>{e(x)}</li>' for x in c['evidence'])}</ul>" for c in s["campaigns"])
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(s['title'])}</title></head>"
            f"<body><h1>{e(s['title'])}</h1><p>For: {e(s['audience'])}. Created {e(s['created'])} by "
            f"{e(s['producer'])}. Case state: {e(s['state'])}.</p><table>{rows}</table><h2>Escalation criteria</h2>"
            f"<table><tr><th>criterion</th><th>status</th><th>measured</th></tr>{crit}</table>"
            f"<p>{'All required criteria met.' if s['ready'] else 'Not all required criteria are met.'}</p>"
            f"<h2>Campaigns</h2>{camps}<p>Every artefact of this package is listed with its SHA-256 in manifest.json; "
            f"custody.jsonl and case-uco.jsonld record how it was collected.</p></body></html>")


def _summary_pdf(s: dict[str, Any], path: Path) -> None:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    e = html.escape
    story: list[Any] = [Paragraph(e(s["title"]), styles["Title"]),
                        Paragraph(f"For: {e(s['audience'])}. Created {e(s['created'])} by {e(s['producer'])}.",
                                  styles["Normal"]), Spacer(1, 8)]
    grid = TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                       ("FONTSIZE", (0, 0), (-1, -1), 8)])
    story.append(Table([[k, Paragraph(e(v), styles["BodyText"])] for k, v in s["facts"]], colWidths=[180, 300],
                       style=grid))
    story += [Spacer(1, 8), Paragraph("Escalation criteria", styles["Heading2"])]
    story.append(Table([["criterion", "status", "measured"]] + [[Paragraph(e(n), styles["BodyText"]), m,
                                                                 Paragraph(e(v), styles["BodyText"])]
                                                                for n, m, v in s["criteria"]],
                       colWidths=[170, 60, 250], style=grid))
    story.append(Paragraph("Campaigns", styles["Heading2"]))
    for c in s["campaigns"]:
        story.append(Paragraph(e(c["id"]), styles["Heading3"]))
        story.append(Paragraph(f"{c['accounts']:,} accounts, {c['exchanges']:,} exchanges, {e(str(c['first_seen']))}"
                               f" to {e(str(c['last_seen']))}. Capabilities: {e(c['capabilities'])}. "
                               f"MITRE ATLAS: {e(c['atlas'])}.", styles["BodyText"]))
        for x in c["evidence"]:
            story.append(Paragraph("• " + e(x), styles["BodyText"]))
    story.append(Paragraph("Every artefact is listed with its SHA-256 in manifest.json; custody.jsonl and "
                           "case-uco.jsonld record how it was collected.", styles["Italic"]))
    SimpleDocTemplate(str(path), pagesize=A4, title=s["title"], author=s["producer"],
                      invariant=1).build(story)


def _stix(case: Case, campaigns: list[dict[str, Any]], accounts: list[str], now: datetime) -> dict[str, Any]:
    import stix2

    from distillguard.intel.refdata import tlp_markings

    amber = tlp_markings()["amber+strict"]
    marking = amber["id"]
    provider = stix2.Identity(name="reporting provider", identity_class="organization", object_marking_refs=[marking])
    objects: list[Any] = [provider]
    patterns = {}
    for tid, tname in ATLAS_NAMES.items():
        patterns[tid] = stix2.AttackPattern(
            name=tname, created_by_ref=provider.id, object_marking_refs=[marking],
            external_references=[{"source_name": "mitre-atlas", "external_id": tid,
                                  "url": f"https://atlas.mitre.org/techniques/{tid}"}])
    objects += patterns.values()
    member_of: dict[str, str] = {}
    for c in campaigns:
        camp = stix2.Campaign(name=c["id"], created_by_ref=provider.id, object_marking_refs=[marking],
                              first_seen=c.get("first_seen") or None, last_seen=c.get("last_seen") or None,
                              objective="adversarial distillation: harvesting model outputs to train another model",
                              description="; ".join(e["detail"] for e in c.get("evidence", []))[:4000] or None)
        objects.append(camp)
        for tid in c.get("atlas", []):
            if tid in patterns:
                objects.append(stix2.Relationship(camp, "uses", patterns[tid], created_by_ref=provider.id,
                                                  object_marking_refs=[marking]))
        for a in c["accounts"]:
            member_of[a] = camp.id
    refs = []
    for a in accounts:
        account = stix2.UserAccount(user_id=a, account_type="llm-api", object_marking_refs=[marking])
        objects.append(account)
        refs.append(account.id)
    if refs:
        objects.append(stix2.ObservedData(
            first_observed=min((c["first_seen"] for c in campaigns if c.get("first_seen")), default=_iso(now)),
            last_observed=max((c["last_seen"] for c in campaigns if c.get("last_seen")), default=_iso(now)),
            number_observed=max(1, len(refs)), object_refs=refs, created_by_ref=provider.id,
            object_marking_refs=[marking]))
    objects.append(stix2.Report(name=f"{case.id}: {case.title}", published=now, report_types=["campaign"],
                                object_refs=[o.id for o in objects if o.type in ("campaign", "observed-data")]
                                or [provider.id], created_by_ref=provider.id, object_marking_refs=[marking]))
    bundle = stix2.Bundle(objects=[amber, *objects], allow_custom=False)
    return orjson.loads(bundle.serialize())


def _custody(console: Any, case: Case, accounts: list[str], user: Any, audience: str, why: str,
             now: datetime) -> list[dict[str, Any]]:
    """Every recorded step touching the case or its accounts (audit log, oldest first), then this export."""
    targets = {f"case:{case.id}", *(f"case:{m}" for m in case.merged_from), *(f"account:{a}" for a in accounts),
               *(f"campaign:{c}" for c in case.campaigns)}
    steps = []
    for entry in reversed(console.db.audit_entries(limit=100_000)):
        if entry.target in targets:
            steps.append({"seq": entry.seq, "at": entry.at, "who": entry.actor, "role": entry.role,
                          "what": entry.action, "target": entry.target, "why": entry.why, "hash": entry.hash})
    steps.append({"seq": None, "at": _iso(now), "who": user.name, "role": user.role, "what": "export-package",
                  "target": f"case:{case.id}", "why": why, "audience": audience, "tool": producer()})
    return steps


def _node(kind: str) -> str:
    return f"{_KB}{uuid.uuid4()}"


def _case_uco(case: Case, hashes: dict[str, dict[str, Any]], custody: list[dict[str, Any]], user: Any, audience: str,
              now: datetime) -> dict[str, Any]:
    """Provenance and custody as a CASE/UCO graph (validated with case-utils' ``case_validate`` in the tests)."""
    context = {
        "case-investigation": "https://ontology.caseontology.org/case/investigation/",
        "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
        "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
        "uco-identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
        "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
        "uco-tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
        "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
    }
    graph: list[dict[str, Any]] = []
    tool = {"@id": _node("tool"), "@type": "uco-tool:Tool", "uco-core:name": "distillguard",
            "uco-tool:version": producer().split(" ")[-1]}
    graph.append(tool)
    people: dict[str, dict[str, Any]] = {}

    def person(name: str) -> dict[str, str]:
        if name not in people:
            people[name] = {"@id": _node("identity"), "@type": "uco-identity:Identity", "uco-core:name": name}
            graph.append(people[name])
        return {"@id": people[name]["@id"]}

    files = []
    for number, (rel, meta) in enumerate(sorted(hashes.items()), 1):
        file_id = _node("file")
        graph.append({
            "@id": file_id, "@type": "uco-observable:File",
            "uco-core:hasFacet": [
                {"@id": _node("file-facet"), "@type": "uco-observable:FileFacet", "uco-observable:fileName": rel,
                 "uco-observable:sizeInBytes": {"@type": "xsd:integer", "@value": str(meta["bytes"])}},
                {"@id": _node("content-facet"), "@type": "uco-observable:ContentDataFacet",
                 "uco-observable:hash": [{"@id": _node("hash"), "@type": "uco-types:Hash",
                                          "uco-types:hashMethod": "SHA256",
                                          "uco-types:hashValue": {"@type": "xsd:hexBinary",
                                                                  "@value": meta["sha256"].upper()}}]}]})
        record = _node("provenance-record")
        graph.append({"@id": record, "@type": "case-investigation:ProvenanceRecord",
                      "case-investigation:exhibitNumber": f"{case.id}-{number:03d}",
                      "uco-core:object": [{"@id": file_id}]})
        files.append((file_id, record))
    previous: list[dict[str, str]] = []
    actions = []
    for step in custody:
        action_id = _node("action")
        node: dict[str, Any] = {
            "@id": action_id, "@type": "case-investigation:InvestigativeAction",
            "uco-core:name": step["what"], "uco-core:description": f"{step['target']}: {step.get('why') or ''}".strip(),
            "uco-action:performer": person(step["who"]), "uco-action:instrument": {"@id": tool["@id"]},
            "uco-action:startTime": {"@type": "xsd:dateTime", "@value": step["at"]}}
        if step["what"] == "export-package":
            node["uco-action:result"] = [{"@id": r} for _, r in files]
        if previous:
            node["uco-action:object"] = previous
        graph.append(node)
        previous = [{"@id": action_id}]
        actions.append({"@id": action_id})
    graph.append({"@id": _node("investigation"), "@type": "case-investigation:Investigation",
                  "uco-core:name": f"{case.id}: {case.title}",
                  "case-investigation:focus": "adversarial distillation of an LLM API",
                  "uco-core:description": f"escalation package for {audience}, exported by {user.name}",
                  "uco-core:object": actions + [{"@id": r} for _, r in files]})
    return {"@context": context, "@graph": graph}
