"""Reading the lockfile that lock.py writes: entries from their lines, corrupt files refused.

Our own layout (a YAML header, `jobs:`, one JSON line per entry) is read line by line with a
JSON parser, each line's entry built as soon as it is read; any other layout (a hand-edited
block-style lock) goes through the YAML loader. Either way a cut-off, damaged or foreign file
is a LockError naming the line, never a shorter lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import yaml

from ..errors import LockError, ManifestError, utf8_damage
from ..perf import gc_paused
from ..spec import validation as schemas
from ..spec.manifest import parse_yaml
from .journal import Entries
from .lockentry import entry_from_json, entry_problem

LOCK_VERSION = 1

TITLE = (
    "# i2v lockfile: the record of what was bought. Written by i2v; review it, do not edit it."
    " It ends with the line `# end`."
)
"""The first line. A lock that starts with it must end with END: a copy cut at a line's end
(a partial checkout, a copy that ran out of room) would otherwise read as a lock with fewer
jobs, whose missing ones a run would buy again. Older locks (another first line) have no END."""
END = "# end"

REQUEST_KEY = ', "request": '
"""`request` is the last key of a line. A JSON string cannot hold a bare `"`, so this text only
occurs as that key: lines split there without parsing the request, which stays JSON text."""
_KEY = '"request"'


def _corrupt(path: Path, why: str, line: int | str | None = None) -> LockError:
    """line: a line number, or a ready `path:line:column`."""
    where = line if isinstance(line, str) else f"{path}:{line}" if line else str(path)
    return LockError(
        f"the lockfile is corrupt or not an i2v lock: {why}",
        where=where,
        hint=(
            f"inspect this file: {path}. If it is an i2v lock, restore it from version control "
            f"(e.g. `git checkout -- FILE`){' or fix the line named' if where != str(path) else ''}"
            "; do not delete it: it is the record of the videos bought. If it is not one, move "
            "it away"
        ),
    )


def _not_utf8(path: Path) -> LockError:
    offset, line, col = utf8_damage(path.read_bytes()) or (0, 1, 1)
    return _corrupt(path, f"not UTF-8 text (byte offset {offset})", f"{path}:{line}:{col}")


Row = tuple[int, dict[str, Any], str | None]
"""(line number, entry without its request, the request's JSON text or None)"""


class _TornLine(Exception):
    """A job line of our own layout that does not parse: cut short or damaged."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line, self.why = line, why


class _CutShort(Exception):
    """A lock whose first line promises END, read to its last line without meeting it."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _cut_short(path: Path, line: int) -> LockError:
    return _corrupt(
        path,
        f"the file stops at line {line} without its last line `{END}`: it was cut short, "
        "and the jobs after the cut would be bought again (restore it, e.g. `git checkout`)",
        line,
    )


class _Foreign(Exception):
    """The file is not laid out as i2v writes it: the YAML parser reads it."""


def _parse_fast(f: IO[str]) -> tuple[dict[str, Any], Iterator[Row]]:
    """Our own layout, read line by line: YAML header, `jobs:`, one `- {json}` per line. The
    rows come as they are read (a 100,000-line lock never holds all its parsed lines at once);
    _Foreign, now or while rows are read, if the file is laid out otherwise; _TornLine for a
    `- {` line that is not whole JSON (a lock cut short is never read as a shorter lock)."""
    head: list[str] = []
    for line in f:
        if line.startswith("jobs:"):
            jobs_line = line.rstrip()
            break
        head.append(line)
    else:
        raise _Foreign
    try:
        header = yaml.load("".join(head), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:  # e.g. git's conflict markers: the slow path says where, cleanly
        raise _Foreign from None
    if not isinstance(header, dict) or jobs_line not in ("jobs:", "jobs: []"):
        raise _Foreign
    ends = bool(head) and head[0].rstrip("\r\n") == TITLE
    return header, _rows(f, len(head) + 2, jobs_line == "jobs: []", ends)


def _rows(f: IO[str], first: int, empty: bool, ends: bool) -> Iterator[Row]:
    n, end = first - 1, False
    for n, line in enumerate(f, first):
        if not line.strip():
            continue
        if end:  # a line after the end: not laid out as i2v writes
            raise _Foreign
        if line.rstrip("\r\n") == END:
            end = True
            continue
        if empty or not line.startswith("- {"):
            raise _Foreign
        yield (n, *_split_line(n, line))
    if ends and not end:
        raise _CutShort(n)


def _split_line(n: int, line: str) -> tuple[dict[str, Any], str | None]:
    """(the entry without its request, the request's JSON text); _TornLine if either is not
    whole JSON. The request is kept as text.

    A line as lock.py writes it is parsed once, whole: its one `"request"` (no other, and no
    `\\u` escape that could spell another) is then the last top-level key, so the text after
    REQUEST_KEY is the request, and the line is what _split_exact reads it as. Any other line
    goes to _split_exact, which also words the error of a damaged one."""
    body = line[2:].rstrip()
    # one pass for the key (its first `"request"`, and no other after it) and a memchr for a
    # backslash (a two-character `in` is 10x slower): half the cost of find + count + `in`
    at = body.find(_KEY)
    cut = at - 2
    if (
        cut > 0
        and body.startswith(REQUEST_KEY, cut)
        and body.find(_KEY, at + len(_KEY)) < 0
        and ("\\" not in body or "\\u" not in body)
    ):
        try:
            d = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _split_exact(n, body, cut)  # cut is the first REQUEST_KEY
        if (
            d.__class__ is dict
            and next(reversed(d)) == "request"
            and d["request"].__class__ is dict
        ):
            del d["request"]
            return d, body[cut + len(REQUEST_KEY) : -1]
    return _split_exact(n, body, body.find(REQUEST_KEY))


def _split_exact(n: int, body: str, cut: int) -> tuple[dict[str, Any], str | None]:
    """_split_line part by part: the entry before REQUEST_KEY, then the request after it."""
    try:
        if cut < 0:
            head, request = orjson.loads(body), None
        else:
            if not body.endswith("}"):
                raise _TornLine(n, "the line is cut short (it does not end with `}`)")
            request = body[cut + len(REQUEST_KEY) : -1]
            head = orjson.loads(body[:cut] + "}")
            if not isinstance(orjson.loads(request), dict):
                raise _TornLine(n, "the line's request is not a JSON object")
    except orjson.JSONDecodeError as exc:
        raise _TornLine(n, f"the line is cut short or damaged ({exc})") from None
    if not isinstance(head, dict):
        raise _TornLine(n, "the line is not a JSON object")
    return head, request


def _byte_offset(path: Path, line: int) -> int:
    """Where line (1-based) starts in the file, in bytes: for the error message."""
    offset = 0
    with open(path, "rb") as f:
        for _ in range(line - 1):
            offset += len(f.readline())
    return offset


def read_lock(path: Path) -> Entries:
    """Load the lockfile (empty if there is none). Corrupt or foreign files are LockError."""
    with gc_paused():
        return _read_lock(path)


def _read_lock(path: Path) -> Entries:
    try:
        with open(path, encoding="utf-8") as f:
            try:
                return _collect(path, *_parse_fast(f))
            except _TornLine as torn:
                header, rows = _parse_torn(path, torn)
            except _CutShort as cut:
                raise _cut_short(path, cut.line) from None
            except _Foreign:
                header, rows = _parse_slow(path, path.read_text(encoding="utf-8"))
        return _collect(path, header, iter(rows))
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError as exc:
        raise _corrupt(path, str(exc)) from None


def read_rows(path: Path) -> tuple[dict[str, Any], list[Row]]:
    """The lockfile's header and its job rows, unconverted (a merge keeps fields it does not
    know); the header is checked. FileNotFoundError if there is none: the caller decides."""
    try:
        with open(path, encoding="utf-8") as f:
            try:
                header, it = _parse_fast(f)
                rows = list(it)
            except _TornLine as torn:
                header, rows = _parse_torn(path, torn)
            except _CutShort as cut:
                raise _cut_short(path, cut.line) from None
            except _Foreign:
                header, rows = _parse_slow(path, path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError as exc:
        raise _corrupt(path, str(exc)) from None
    if header.get("version") != LOCK_VERSION:
        raise _corrupt(path, f"version {header.get('version')!r}, expected {LOCK_VERSION}")
    schemas.validate("lock", {**header, "jobs": []}, what=str(path), error_class=LockError)
    return header, rows


def _collect(path: Path, header: dict[str, Any], rows: Iterator[Row]) -> Entries:
    """The entries of rows, in order. A problem is raised only once every row has been read:
    a torn or foreign line further on decides first, as when all rows were read up front."""
    problem: LockError | None = None
    if header.get("version") != LOCK_VERSION:
        problem = _corrupt(path, f"version {header.get('version')!r}, expected {LOCK_VERSION}")
    else:
        try:
            schemas.validate("lock", {**header, "jobs": []}, what=str(path), error_class=LockError)
        except LockError as exc:
            problem = exc
    entries: Entries = {}
    for line, row, request in rows:
        if problem is not None:
            continue  # read on: only to see whether the rest is whole
        if not isinstance(row, dict):
            problem = _corrupt(path, "bad job entry: it holds no fields", line)
            continue
        try:
            entry = entry_from_json(row, request)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = _corrupt(path, f"bad job entry: {entry_problem(exc)}", line)
            continue
        if entry.fingerprint in entries:
            problem = _corrupt(path, f"fingerprint {entry.fingerprint[:12]} appears twice", line)
        entries[entry.fingerprint] = entry
    if problem is not None:
        raise problem
    return entries


def _parse_torn(path: Path, torn: _TornLine) -> tuple[dict[str, Any], list[Row]]:
    """A `- {` line that is not JSON may still be a hand-edited YAML flow mapping; a line cut
    short never is (its closing brace is gone): then the error names the line and byte."""
    try:
        return _parse_slow(path, path.read_text(encoding="utf-8"))
    except LockError:
        where = f"line {torn.line} (byte {_byte_offset(path, torn.line)})"
        raise _corrupt(path, f"{where}: {torn.why}", torn.line) from None


def _parse_slow(path: Path, text: str) -> tuple[dict[str, Any], list[Row]]:
    """Any YAML layout, through the manifest loader: safe, and bounded against alias bombs.
    One that keeps i2v's first line must keep its last (END) too."""
    lines = text.splitlines()
    if lines and lines[0] == TITLE and END not in (line.strip() for line in lines[-3:]):
        raise _cut_short(path, len(lines))
    for n, line in enumerate(lines, 1):
        if line.startswith(("<<<<<<< ", ">>>>>>> ")):
            raise LockError(
                f"git's merge left its conflict markers in the lockfile (line {n})",
                where=f"{path}:{n}",
                hint="merge it with i2v, from git's three versions: `git show :1:FILE >base; "
                "git show :2:FILE >ours; git show :3:FILE >theirs; i2v lock merge base ours "
                "theirs` writes it to ours (`i2v lock install-merge-driver` once, and git does "
                "this itself)",
            )
    try:
        doc, marks = parse_yaml(text, str(path))
    except ManifestError as exc:  # its `where` is path:line:column
        why = f"not a readable YAML document ({exc.message})"
        if "\njobs:" in text and text.rsplit("\n", 1)[-1].startswith("- {"):  # our layout, cut
            why = f"the file ends mid-line, as a cut-off copy or write does ({exc.message})"
        raise _corrupt(path, why, exc.where) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list):
        raise _corrupt(path, "no `jobs:` list")
    header = {k: v for k, v in doc.items() if k != "jobs"}
    # each job's line, so an error in one names it as the fast path does
    return header, [(marks.get(("jobs", i), (0, 0))[0], j, None) for i, j in enumerate(doc["jobs"])]
