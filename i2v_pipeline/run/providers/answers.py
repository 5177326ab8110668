"""Reading AKOOL's answers as hostile input: every field is checked for type and range before it
reaches the executor, the lockfile or the terminal.

Readers raise Malformed when an answer cannot be used at all; the provider turns that into an
UnknownOutcomeError on a create (the server may have created the video) and a TransientError on
a read. A field that is wrong but not essential is dropped (None) rather than failing the job,
so that valid ids in a create's answer are never lost to garbage next to them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from ...akool_codes import STATUS_FAILED, STATUS_PROCESSING, STATUS_QUEUED, STATUS_SUCCEEDED
from ...errors import redact
from ...model import JobStatus
from .base import Created, Result

MAX_BODY = 4 << 20  # bytes of one JSON answer: a hostile server must not exhaust memory
MAX_TEXT = 300  # characters of a server message shown to the user
MAX_CREDITS = 1_000_000  # per video: more is garbage, not a price
MAX_SECONDS = 24 * 3600.0
ID = re.compile(r"[0-9a-fA-F]{8,64}")  # Mongo ObjectIds; never a comma (ids are comma-joined)
TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")  # printable, no spaces: it goes into a header
MAX_URL = 8192 + len("https://")
URL = re.compile(r"https?://[\x21-\x7e]{1,8192}", re.IGNORECASE)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,30}):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]+")
STATUSES: dict[int, JobStatus] = {
    STATUS_QUEUED: JobStatus.QUEUED,
    STATUS_PROCESSING: JobStatus.PROCESSING,
    STATUS_SUCCEEDED: JobStatus.SUCCEEDED,
    STATUS_FAILED: JobStatus.FAILED,
}
"""AKOOL's result status -> ours: the one place the numbers are translated."""


class Malformed(Exception):
    """An answer that is not what the API documents; the message says what is wrong."""


def parse_json(raw: bytes) -> Any:
    """The decoded body, or None when it is not JSON (bad UTF-8, too deep). NaN and Infinity
    decode (as floats the field readers refuse), so that a NaN price cannot hide a created id."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: e.g. 100k nested arrays
        return None


def text(value: object, limit: int = MAX_TEXT) -> str:
    """A server string fit for a terminal and a UTF-8 file: no control or bidi characters, no
    lone surrogate (JSON can spell one, `\\ud800`, UTF-8 cannot), at most limit chars."""
    try:
        s = value if isinstance(value, str) else json.dumps(value, default=str)
    except (ValueError, RecursionError):  # a structure too deep to print
        s = type(value).__name__
    # Redact before cutting: a secret cut in half would no longer be recognised.
    s = _CONTROL.sub(" ", redact(s)).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def envelope_code(doc: object) -> int | None:
    """AKOOL's `code` if doc is an envelope: an object whose code is an integer (not a bool)."""
    code = doc.get("code") if isinstance(doc, dict) else None
    return code if isinstance(code, int) and is_int(code) and 0 <= code < 1 << 31 else None


def remote_id(value: object) -> str | None:
    return value if isinstance(value, str) and ID.fullmatch(value) else None


def credits(value: object) -> int | None:
    """A non-negative whole number of credits, else None (never NaN, inf, negative or huge)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if 0 <= value <= MAX_CREDITS else None


def seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and 0 <= value <= MAX_SECONDS else None


def video_url(value: object) -> str | None:
    return value if isinstance(value, str) and URL.fullmatch(value) else None


def token(doc: dict[str, Any]) -> str | None:
    data = doc.get("data")
    value = doc.get("token") or (data.get("token") if isinstance(data, dict) else None)
    return value if isinstance(value, str) and TOKEN.fullmatch(value) else None


def created(data: object) -> Created | str:
    """The ids and cost of a create, or the errorList text when the server created nothing.
    Malformed when it says OK in a shape that hides what was created."""
    if isinstance(data, dict) and "successList" in data:
        items = data["successList"]
    elif isinstance(data, dict):
        items = [data]  # the single-create shape
    else:
        raise Malformed(f"`data` is {type(data).__name__}, not an object")
    if not isinstance(items, list):
        raise Malformed("`successList` is not a list")
    if not items:  # an explicit empty list: nothing was created
        return f"the create returned no videos (errorList: {text(data.get('errorList'))})"
    ids: dict[str, int | None] = {}
    for item in items:
        rid = remote_id(item.get("_id")) if isinstance(item, dict) else None
        if rid is not None:
            ids.setdefault(rid, credits(item.get("deduction_credit")))
    if not ids:
        raise Malformed(f"no readable `_id` in {len(items)} created item(s)")
    costs = [c for c in ids.values() if c is not None]
    return Created(tuple(ids), sum(costs) if costs else None)


def result(row: object) -> Result | None:
    """One row of resultsByIds, or None when it cannot be trusted (bad id or status)."""
    if not isinstance(row, dict):
        return None
    rid, status = remote_id(row.get("_id")), row.get("status")
    if rid is None or not is_int(status) or status not in STATUSES:
        return None
    ours = STATUSES[status]
    raw_url = row.get("video_url")
    url = video_url(raw_url)
    # Done without a usable URL is done, not processing: calling it processing would leave the
    # job polled until its timeout and then "left running remotely" when it never will finish.
    problem = url_problem(raw_url) if ours is JobStatus.SUCCEEDED and url is None else None
    return Result(
        id=rid,
        status=ours,
        video_url=url,
        credits=credits(row.get("deduction_credit")),
        duration=seconds(row.get("video_duration")),
        url_problem=problem,
    )


def url_problem(value: object) -> str:
    """Why a done video's result URL cannot be used, naming at most its scheme (a query string
    may carry a signature, a path anything at all)."""
    if value is None or value == "":
        return "the API reported the video done but gave no result URL"
    if not isinstance(value, str):
        return f"the API gave a result URL that is not a string ({type(value).__name__})"
    scheme = _SCHEME.match(value)
    if scheme is None or scheme.group(1).lower() not in ("http", "https"):
        shown = text(scheme.group(1), 20) + ":…" if scheme else "no scheme"
        return f"the API gave a result URL that is not http(s): {shown}"
    if len(value) > MAX_URL:
        return f"the API gave a result URL over {MAX_URL:,} characters"
    return "the API gave a malformed http(s) result URL (spaces, control characters or no host)"


def rows(data: object, key: str = "result") -> list[Any]:
    """`data.result` or `data` itself as a list; Malformed otherwise."""
    found = data.get(key) if isinstance(data, dict) else data
    if not isinstance(found, list):
        raise Malformed(f"no `{key}` list in the answer")
    return found


def deleted(data: object, asked: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """(deleted, {refused: why}) for the ids asked; one the answer does not mention is refused,
    so that nothing is forgotten locally on an answer that does not confirm it."""
    if not isinstance(data, dict):
        raise Malformed("`data` is not an object")
    wanted = set(asked)
    ok_raw, refused_raw = data.get("successIds") or [], data.get("noPermissionItems") or []
    if not isinstance(ok_raw, list) or not isinstance(refused_raw, list):
        raise Malformed("`successIds` or `noPermissionItems` is not a list")
    ok = [i for i in dict.fromkeys(ok_raw) if isinstance(i, str) and i in wanted]
    refused = {
        rid: text(item.get("msg", "refused"))
        for item in refused_raw
        if isinstance(item, dict) and (rid := item.get("_id")) in wanted and isinstance(rid, str)
    }
    for rid in asked:
        if rid not in ok and rid not in refused:
            refused[rid] = "the API did not confirm the deletion"
    return ok, refused


def model(raw: object) -> bool:
    """True when raw is a model entry the catalog can read (checked here so that a bad answer
    never reaches the cache, where it would break every later run)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), str) or not raw["value"]:
        return False
    res, durs = raw.get("resolutionList") or [], raw.get("durationList") or []
    if not isinstance(res, list) or not isinstance(durs, list):
        return False
    return (
        all(isinstance(r, dict) and isinstance(r.get("value"), str) for r in res)
        and all(is_int(d) and 0 < d <= MAX_SECONDS for d in durs)
        and all(raw.get(k) is None or is_int(raw[k]) for k in ("maxCount", "sort"))
        and abs(raw.get("sort") or 0) < 1 << 31
        and isinstance(raw.get("label", ""), str)
    )


def effect(raw: object) -> dict[str, Any] | None:
    """An effect row with a printable code and name, or None."""
    if not isinstance(raw, dict) or not isinstance(code := raw.get("effect_code"), str):
        return None
    if not code or text(code, 200) != code:
        return None
    return {**raw, "name": text(raw.get("name", ""))}


def credit(data: object) -> float:
    value = data.get("credit") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Malformed("no numeric `credit` in the answer")
    return float(value)
