"""Bad arguments and unreachable services give the documented errors (usage: exit 2; bad input or an unreachable
service: exit 1), never a raw traceback; the README's Python API snippet runs as written."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import orjson
from click.testing import CliRunner

from conftest import make_record
from distillguard.cli import main


def _clean(result) -> str:  # noqa: ANN001
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return " ".join(result.output.split())


def test_detect_memory_limit_must_be_a_size(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["detect", "--memory-limit", "lots", "--store", str(tmp_path), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "'lots' is not a size" in _clean(result) and "5GB" in _clean(result)
    result = CliRunner().invoke(main, ["detect", "--memory-limit", "1KB", "--store", str(tmp_path), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2 and "too small" in _clean(result)


def test_detect_accepts_a_well_formed_memory_limit(tmp_path: Path, write_jsonl) -> None:
    log = write_jsonl("log.jsonl", [make_record(i, account=f"acct_{i % 3}") for i in range(30)])
    result = CliRunner().invoke(main, ["detect", str(log), "--memory-limit", "512MiB", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "accounts.csv").exists()


def test_demo_scale_must_be_a_preset(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--scale", "huge", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 2
    text = _clean(result)
    assert "Invalid value for '--scale'" in text and "'huge' is not one of" in text and "tiny" in text
    assert not (tmp_path / "demo").exists()  # refused before anything was touched


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keys(tmp_path: Path) -> tuple[Path, Path]:
    runner = CliRunner()
    keys = tmp_path / "keys"
    result = runner.invoke(main, ["intel", "keygen", "--member", "p1", "--out", str(keys), "--group-key"])
    assert result.exit_code == 0, result.output
    group = tmp_path / "group.yaml"
    group.write_text("members:\n  p1:\n    public_key: |\n" + "".join(
        f"      {line}\n" for line in (keys / "p1.pub").read_text().splitlines()))
    return keys, group


def test_intel_pull_and_publish_with_the_hub_down(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DG_TAXII_PASSWORD", "secret")
    _, group = _keys(tmp_path)
    url = f"http://127.0.0.1:{_closed_port()}/taxii2/"
    common = ["--url", url, "--collection", "c1", "--user", "u", "--state", str(tmp_path / "state.json")]
    result = CliRunner().invoke(main, ["intel", "pull", *common, "--group", str(group), "--out", str(tmp_path / "p")])
    assert result.exit_code == 1
    assert f"{url}: cannot reach the TAXII hub" in _clean(result)
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--0", "objects": []}))
    result = CliRunner().invoke(main, ["intel", "publish", *common, "--bundle", str(bundle)])
    assert result.exit_code == 1 and "cannot reach the TAXII hub" in _clean(result)


def test_intel_match_takes_several_bundles_after_one_option(tmp_path: Path) -> None:
    """``--bundle pulled/*.json``: the shell passes the second file as an argument, which is a bundle too."""
    keys, group = _keys(tmp_path)
    store = tmp_path / "store"
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(orjson.dumps(make_record(i)) + b"\n" for i in range(3)))
    assert CliRunner().invoke(main, ["ingest", str(log), "--store", str(store)]).exit_code == 0
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    for name in ("pulled-1.json", "pulled-2.json"):
        (pulled / name).write_text(json.dumps({"type": "bundle", "id": f"bundle--{name}", "objects": []}))
    out = tmp_path / "matches.csv"
    result = CliRunner().invoke(main, ["intel", "match", "--store", str(store), "--group-key",
                                       str(keys / "group.key"), "--group", str(group), "--out", str(out),
                                       "--bundle", *sorted(map(str, pulled.iterdir()))])
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_readme_python_api_snippet_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    snippet = readme.split("## Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert 'accounts="accounts.jsonl"' in snippet  # strings, as a user writes them
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_bytes(b"".join(orjson.dumps(make_record(i)) + b"\n" for i in range(4)))
    (tmp_path / "accounts.jsonl").write_bytes(orjson.dumps({"account_id": "acct_1", "tier": "free"}) + b"\n")
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)  # noqa: S102 (the documented snippet itself)
    assert scope["report"].ingested == 4 and scope["report"].accounts == 1
