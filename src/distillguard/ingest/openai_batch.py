"""OpenAI Batch API files: input lines joined with output/error lines on ``custom_id``.

A Batch job leaves two (or three) JSONL files: the input the customer uploaded
(``{"custom_id", "method", "url", "body"}``) and the output and error files
(``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``).
Neither side alone is an exchange, and OpenAI writes outputs in completion order,
not input order, so the two are joined on ``custom_id``. Lines are classified one
by one, so the files may be passed in any order, and may even be concatenated.

Memory stays flat for big files: only ``custom_id -> (file, byte offset, line)``
of the input side is held, and an input line is re-read by seeking when its
output arrives. Compressed inputs cannot be seeked cheaply, so their input lines
are spooled, decompressed, to an anonymous temporary file.

Batch files carry no account or client address: they come from options (the
batch belongs to one account), see docs/ingest-formats.md.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import orjson

from distillguard.ingest.base import IngestFormat, Line, parse_line
from distillguard.model.exchange import FieldError, format_ts, parse_ts

_COMPRESSED = (".gz", ".zst", ".zstd")


def _kind(obj: Any) -> str | None:
    """``"input"``, ``"output"`` or None for a parsed line."""
    if not isinstance(obj, dict) or "custom_id" not in obj:
        return None
    if "body" in obj and ("url" in obj or "method" in obj):
        return "input"
    if "response" in obj or "error" in obj:
        return "output"
    return None


def _unknown(obj: Any) -> str:
    """Why a parsed line is neither an input nor an output line, naming the field."""
    if not isinstance(obj, dict):
        return "<record>: expected a JSON object"
    if "custom_id" not in obj:
        return "custom_id: required"
    if "url" in obj or "method" in obj:
        return "body: required on an input line"
    return "response: an output line needs response or error"


class OpenAIBatchFormat(IngestFormat):
    """Options: ``account_id``, ``ip``, ``ts``, ``api_key_id``, ``org_id``, ``batch_id``."""

    name = "openai-batch"

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        first = head.lstrip().split(b"\n", 1)[0]
        if not first.startswith(b"{"):
            return False
        try:
            return _kind(orjson.loads(first)) is not None
        except orjson.JSONDecodeError:
            pass
        # The first line is longer than the head (big bodies): judge by its start.
        start = first[:512]
        return b'"custom_id"' in start and (
            (b'"method"' in start and b'"url"' in start) or start.replace(b" ", b"").startswith(b'{"id":"batch_req')
        )

    def read(self, paths: Sequence[Path]) -> Iterator[Line]:
        # custom_id -> (file index, line number, byte offset, spooled?) of its input line
        index: dict[str, tuple[int, int, int, bool]] = {}
        has_output: list[bool] = []
        spool: IO[bytes] | None = None
        handles: dict[int, IO[bytes]] = {}
        stack = ExitStack()

        def read_input(loc: tuple[int, int, int, bool]) -> bytes:
            fidx, _, offset, spooled = loc
            if spooled:
                assert spool is not None
                handle = spool
            else:
                opened = handles.get(fidx)
                if opened is None:
                    opened = handles[fidx] = stack.enter_context(paths[fidx].open("rb"))
                handle = opened
            handle.seek(offset)
            return handle.readline()

        with stack:
            # Pass 1: index input lines; report every line that is neither input nor output.
            for fidx, path in enumerate(paths):
                source = str(path)
                compressed = path.suffix.lower() in _COMPRESSED
                found_output = False
                offset = 0
                with self.open(path) as handle:
                    for number, raw in enumerate(handle, 1):
                        start, offset = offset, offset + len(raw)
                        if not raw.strip():
                            continue
                        parsed = parse_line(source, number, raw)
                        if parsed.error is not None:
                            yield parsed
                            continue
                        obj = parsed.record
                        kind = _kind(obj)
                        if kind == "output":
                            found_output = True
                            continue
                        if kind is None:
                            yield Line(source, number, raw, error=_unknown(obj))
                            continue
                        assert obj is not None  # _kind found its custom_id
                        cid = obj["custom_id"]
                        if not isinstance(cid, str) or not cid:
                            yield Line(source, number, raw, error="custom_id: expected a non-empty string")
                            continue
                        if cid in index:
                            first = index[cid]
                            yield Line(source, number, raw, error=f"custom_id: duplicate input line for {cid!r} "
                                                                  f"(first at {paths[first[0]]}:{first[1]})")
                            continue
                        if compressed:
                            if spool is None:
                                spool = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (owned by stack)
                            index[cid] = (fidx, number, spool.tell(), True)
                            spool.write(raw if raw.endswith(b"\n") else raw + b"\n")
                        else:
                            index[cid] = (fidx, number, start, False)
                has_output.append(found_output)

            # Pass 2: stream output lines and join each with its input line.
            done: set[str] = set()
            for fidx, path in enumerate(paths):
                if not has_output[fidx]:
                    continue
                source = str(path)
                with self.open(path) as handle:
                    for number, raw in enumerate(handle, 1):
                        if not raw.strip():
                            continue
                        try:
                            out = orjson.loads(raw)
                        except orjson.JSONDecodeError:
                            continue  # reported in pass 1
                        if _kind(out) != "output":
                            continue
                        cid = out["custom_id"]
                        if not isinstance(cid, str) or not cid:
                            yield Line(source, number, raw, error="custom_id: expected a non-empty string")
                            continue
                        if cid in done:
                            yield Line(source, number, raw, error=f"custom_id: duplicate output line for {cid!r}")
                            continue
                        loc = index.pop(cid, None)
                        if loc is None:
                            yield Line(source, number, raw,
                                       error=f"custom_id: output line has no input line with custom_id {cid!r}")
                            continue
                        done.add(cid)
                        in_raw = read_input(loc)
                        unit = (in_raw if in_raw.endswith(b"\n") else in_raw + b"\n") + raw
                        yield self._line(source, number, unit, orjson.loads(in_raw), out, cid)

            # Pass 3: inputs that never got an output (an expired or cancelled batch), in file order.
            for cid, loc in sorted(index.items(), key=lambda item: item[1][:2]):
                in_raw = read_input(loc)
                yield self._line(str(paths[loc[0]]), loc[1], in_raw, orjson.loads(in_raw), None, cid)

    def _line(self, source: str, number: int, raw: bytes, inp: dict, out: dict | None, cid: str) -> Line:
        try:
            return Line(source, number, raw, record=self._record(inp, out, cid))
        except FieldError as exc:
            return Line(source, number, raw, error=f"{exc.field}: {exc.reason}")

    def _record(self, inp: dict, out: dict | None, cid: str) -> dict[str, Any]:
        """Map one input line and its output line (or None) to a canonical record."""
        body = inp.get("body")
        if not isinstance(body, dict):
            raise FieldError("body", "expected an object")
        response: dict | None = None
        status: int | None = None
        request_id: str | None = None
        created: Any = None
        error: Any = None
        if out is not None:
            resp = out.get("response")
            if resp is not None and not isinstance(resp, dict):
                raise FieldError("response", "expected an object or null")
            if resp:
                code = resp.get("status_code")
                if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
                    raise FieldError("response.status_code", "expected an integer")
                status = code
                rid = resp.get("request_id")
                request_id = rid if isinstance(rid, str) and rid else None
                rbody = resp.get("body")
                if rbody is not None and not isinstance(rbody, dict):
                    raise FieldError("response.body", "expected an object")
                if rbody:
                    created = rbody.get("created", rbody.get("created_at"))
                    if (code is None or 200 <= code < 300) and rbody.get("error") is None:  # Responses: error: null
                        response = rbody
                    else:
                        error = rbody.get("error", rbody)
            if out.get("error") is not None:
                error = out["error"]

        if created is not None:
            if isinstance(created, bool) or not isinstance(created, int | float):
                raise FieldError("response.body.created", "expected unix seconds")
            ts = format_ts(int(created * 1000))
        elif "ts" in self.options:
            ts = self.options["ts"]
            try:
                parse_ts(ts)
            except FieldError as exc:
                raise FieldError("ts", f"option ts: {exc.reason}") from None
        else:
            why = "no output line" if out is None else "output has no response.body.created"
            raise FieldError("ts", f"{why} for custom_id {cid!r}; pass --option ts=<RFC 3339>")

        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            metadata = {}
        account = self.options.get("account_id") or metadata.get("account_id") or body.get("user")
        if not isinstance(account, str) or not account:
            raise FieldError("account_id", "Batch files carry no account; pass --option account_id=<id> "
                                           "(or set body.metadata.account_id / body.user)")
        ip = self.options.get("ip")
        if not ip:
            raise FieldError("client.ip", "Batch files carry no client address; pass --option ip=<address>")

        batch_id = self.options.get("batch_id")
        rid = request_id or (f"batch:{batch_id}:{cid}" if batch_id else f"batch:{cid}")
        record: dict[str, Any] = {"id": rid, "ts": ts, "account_id": account}
        for key in ("api_key_id", "org_id"):
            if self.options.get(key):
                record[key] = self.options[key]
        record["client"] = {"ip": ip}
        url = inp.get("url")
        if isinstance(url, str):
            record["endpoint"] = url
        record["request"] = body
        record["response"] = response
        record["status"] = status
        batch: dict[str, Any] = {"custom_id": cid}
        if batch_id:
            batch["batch_id"] = batch_id
        if out is not None and isinstance(out.get("id"), str):
            batch["request_id"] = out["id"]
        if error is not None:
            batch["error"] = error
        if out is None:
            batch["no_output"] = True
        record["batch"] = batch
        return record
