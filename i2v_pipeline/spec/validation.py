"""The JSON Schemas in `schemas/` (shipped inside the wheel) and friendly validation errors."""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema

if TYPE_CHECKING:  # jsonschema is only imported when there is an error to describe
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

from ..errors import I2VError, ManifestError
from . import budget
from .audio import HINT as AUDIO_HINT
from .audio import KEY as AUDIO_KEY
from .compiled import compile_check
from .settings import STORE_URL_HINT, env_name_problem, store_url_problem

SCHEMA_NAMES = ("manifest", "job", "lock", "plan")
MAX_REPORTED = 5

Locator = Callable[[Sequence[str | int]], str | None]


def schema_dir() -> Path:
    """The wheel puts schemas/ in the package's data folder; a source checkout has it at the top."""
    packaged = resources.files("i2v_pipeline") / "data" / "schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "schemas"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """A bundled JSON Schema by name (manifest, job, lock)."""
    if name not in SCHEMA_NAMES:
        raise KeyError(name)
    path = schema_dir() / f"{name}.schema.json"
    with path.open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A full jsonschema validator: slow, but its errors make the friendly messages."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name))


@functools.cache
def fast_check(name: str) -> Callable[[Any], Any]:
    """A compiled validator for hot loops (a 100k-job plan): ~80x faster than jsonschema.
    It only gates; on failure `validate` reruns jsonschema for the friendly message. The
    schemas use no keyword whose meaning differs between draft 7 and 2020-12."""
    return compile_fast(load_schema(name))


def is_valid(name: str, instance: Any) -> bool:
    """A fast yes/no against a bundled schema (no message).

    A manifest's explicit jobs are checked one by one against the schema's `jobs.items`: the
    compiled check of a whole array spells each item's path with str.format(**locals()),
    which costs more than the check itself on 100,000 jobs."""
    jobs = instance.get("jobs") if name == "manifest" and isinstance(instance, dict) else None
    if not isinstance(jobs, list) or not jobs:
        return passes(fast_check(name), instance)
    if not passes(fast_check(name), {**instance, "jobs": []}):
        return False
    check = _job_item_check()
    return all(check(job) for job in jobs)


@functools.cache
def _job_item_check() -> Callable[[Any], bool]:
    """The check of one entry of a manifest's `jobs:` (with the schema's $defs).

    Its `oneOf` of `required` keys (a prompt or a template) is checked in Python, as exactly
    one of those keys present: the compiled `oneOf` raises and catches an exception for every
    branch that fails, once per job (0.3 s of 100,000)."""
    schema = load_schema("manifest")
    item = {**schema["properties"]["jobs"]["items"], "$id": schema["$id"], "$defs": schema["$defs"]}
    keys = _one_of_required(item)
    if keys is None:
        compiled = compile_fast(item)
        return lambda job: passes(compiled, job)
    compiled = compile_fast({k: v for k, v in item.items() if k != "oneOf"})

    def check(job: Any) -> bool:
        # the compiled check first: it refuses a job that is not a mapping
        return passes(compiled, job) and sum(k in job for k in keys) == 1

    return check


def _one_of_required(schema: dict[str, Any]) -> list[str] | None:
    """The keys of an object schema's `oneOf` whose every branch is `{"required": [key]}`
    (exactly one of them must be present), or None for any other `oneOf`."""
    branches = schema.get("oneOf")
    if schema.get("type") != "object" or not isinstance(branches, list) or not branches:
        return None
    keys = []
    for branch in branches:
        if not isinstance(branch, dict) or branch.keys() != {"required"}:
            return None
        required = branch["required"]
        if not isinstance(required, list) or len(required) != 1:
            return None
        keys.append(required[0])
    return keys if len(set(keys)) == len(keys) else None


def compile_fast(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """A compiled validator for a schema built from parts of ours."""
    draft7 = {**schema, "$schema": "http://json-schema.org/draft-07/schema#"}
    return compile_check(draft7)


_STRING_KEYWORDS = frozenset({"type", "minLength", "maxLength", "pattern", "description"})
_DOLLAR = re.compile(r"(?<!\\)\$")


def string_check(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """A yes/no check of one value against a subschema, for 100,000 values: a plain string
    schema (type, lengths, pattern) is checked in Python, ~5x faster than the compiled check
    and never laxer (`$` is read as the end of the text, as the compiled check reads it, and a
    str subclass is refused); any other schema goes through the compiled check."""
    if schema.get("type") == "string" and schema.keys() <= _STRING_KEYWORDS:
        lo, hi = schema.get("minLength", 0), schema.get("maxLength")
        pattern = schema.get("pattern")
        try:
            search = re.compile(_DOLLAR.sub(r"\\Z", pattern)).search if pattern else None
        except (re.error, TypeError):
            search = lo = None  # the compiled check says what it makes of it
        if isinstance(lo, int) and (hi is None or isinstance(hi, int)):

            def check(value: Any) -> bool:
                return (
                    value.__class__ is str
                    and lo <= len(value)
                    and (hi is None or len(value) <= hi)
                    and (search is None or search(value) is not None)
                )

            return check
    compiled = compile_fast(schema)
    return lambda value: passes(compiled, value)


def passes(check: Callable[[Any], Any], instance: Any) -> bool:
    """True if the compiled check accepts instance."""
    try:
        check(instance)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def json_path(path: Sequence[str | int]) -> str:
    """`images[2].fields.resolution` style, for messages."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _allowed_keys(error: ValidationError) -> list[str]:
    props = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    return sorted(props)


def describe(error: ValidationError) -> tuple[list[str | int], str]:
    """Turn one jsonschema error into (path, message with a next step)."""
    path: list[str | int] = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = _allowed_keys(error)
        extras = sorted(k for k in error.instance if k not in allowed)
        if extras:
            key = extras[0]
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"allowed keys: {', '.join(allowed)}"
            return [*path, key], f"unknown key `{key}` ({hint})"
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        options = [
            s.get("required", [None])[0] for s in error.validator_value if isinstance(s, dict)
        ]
        options = [o for o in options if o]
        if options:
            return path, f"give exactly one of: {', '.join(options)}"
    if error.validator in ("type", "minimum", "maximum") and (
        plain := budget.schema_problem(path, error.instance)
    ):
        return path, plain
    if error.validator == "maxLength" and isinstance(error.instance, str):
        return path, f"is too long ({len(error.instance):,} characters)"
    if error.validator == "required":
        return path, error.message.replace("is a required property", "is required")
    if path[:1] == ["store"] and len(path) == 2 and isinstance(error.instance, str):
        # never error.message: it quotes the value, which may hold a password
        problem = store_url_problem(str(path[1]), error.instance)
        return path, (problem or "is not a usable URL").removeprefix(f"store.{path[1]} ")
    if error.validator == "pattern" and path and str(path[-1]).endswith("_env"):
        return path, env_name_problem(error.instance) or error.message
    if error.validator == "pattern" and path and path[-1] in ("id", "name"):
        return path, (
            f"{error.instance!r} is not a valid id: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return path, error.message


def _hint(error: ValidationError) -> str | None:
    """A hint for this error when there is a better one than the error class's default."""
    if list(error.absolute_path)[:1] == ["store"] and error.validator == "pattern":
        return STORE_URL_HINT
    if AUDIO_KEY in error.absolute_path and error.validator in ("required", "type"):
        return AUDIO_HINT
    if error.validator == "additionalProperties":
        allowed = _allowed_keys(error)
        if allowed:
            return f"keys allowed here: {', '.join(allowed)}"
    if error.validator == "maxLength":
        return f"shorten it to at most {error.validator_value:,} characters"
    if error.validator == "enum":
        return f"use one of: {', '.join(map(str, error.validator_value))}"
    if error.validator in ("minimum", "maximum"):
        side = "at least" if error.validator == "minimum" else "at most"
        return f"use a value {side} {error.validator_value}"
    return None


def validate(
    name: str,
    instance: Any,
    *,
    locate: Locator | None = None,
    what: str = "",
    error_class: type[I2VError] = ManifestError,
) -> None:
    """Raise error_class listing up to MAX_REPORTED problems, each with where it is.

    The compiled check decides first: a 50 MB manifest passes it in well under a second, where
    jsonschema takes tens of seconds. Only a document it refuses meets jsonschema, whose
    errors make the messages (tests/test_manifest.py pins that the schemas use only keywords
    both read alike)."""
    if is_valid(name, instance):
        return
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: list(map(str, e.path)))
    if not errors:
        return
    described = [describe(e) for e in errors[:MAX_REPORTED]]
    if len(errors) == 1:
        path, message = described[0]
        where = (locate(path) if locate else None) or what or None
        raise error_class(f"{json_path(path)}: {message}", where=where, hint=_hint(errors[0]))
    lines = []
    for path, message in described:
        where = (locate(path) if locate else None) or what
        lines.append(f"  {where}: {json_path(path)}: {message}" if where else f"  {message}")
    if len(errors) > MAX_REPORTED:
        lines.append(f"  ... and {len(errors) - MAX_REPORTED} more")
    raise error_class(f"{len(errors)} problems:\n" + "\n".join(lines))
