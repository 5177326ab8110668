"""Campaign settings: where the jobs are bought (provider) and how fast (limits).

Read from the manifest's `provider:` and `limits:` sections, already schema-checked by
manifest.py; compiling the jobs themselves is campaign.py's business.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ManifestError

AKOOL_URL = "https://openapi.akool.com"
ENV_PREFIXES = ("AKOOL_", "I2V_")
"""Credentials come only from variables with these prefixes: a manifest arrives in pull requests,
and naming GITHUB_TOKEN as its `api_key_env` would otherwise send that secret to its endpoint."""
_ENV_NAME = re.compile(r"(AKOOL|I2V)_[A-Z0-9_]+")


def env_name_problem(name: object) -> str | None:
    """Why name may not hold a credential (None when it may). Shared with the schema's message."""
    if isinstance(name, str) and _ENV_NAME.fullmatch(name):
        return None
    return (
        f"{name!r} cannot hold credentials: their variables must be named AKOOL_... or I2V_... "
        "(upper case), so that a manifest cannot pick which of the environment's secrets is "
        "sent; set e.g. I2V_API_KEY and name that"
    )


MAX_JOBS = 200_000
"""Default cap on the jobs one manifest expands to (`limits.max_jobs` raises it)."""
Locate = Callable[[Sequence[str | int]], str]


@dataclass(frozen=True)
class ProviderSettings:
    """Where jobs are bought; credentials are named by env variable, never stored here."""

    endpoint: str = "emulator"
    """`emulator`, or a base URL."""
    api_key_env: str = "AKOOL_API_KEY"
    client_id_env: str = "AKOOL_CLIENT_ID"
    client_secret_env: str = "AKOOL_CLIENT_SECRET"
    webhook_url: str | None = None
    image_base_url: str | None = None

    def __post_init__(self) -> None:
        # The schema refuses such names with file:line:col; this guards every other way in.
        for f in fields(self):
            if f.name.endswith("_env") and (problem := env_name_problem(getattr(self, f.name))):
                raise ManifestError(f"provider.{f.name}: {problem}")

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> ProviderSettings:
        """From the manifest's `provider:`; `akool` stands for the public API URL."""
        raw = {k: v for k, v in data.get("provider", {}).items() if k != "kind"}
        if raw.get("endpoint") == "akool":
            raw["endpoint"] = AKOOL_URL
        return cls(**raw)

    @property
    def is_emulator(self) -> bool:
        return self.endpoint == "emulator"


@dataclass(frozen=True)
class StoreSettings:
    """The manifest's `store:`: where verified videos are shared, keyed by their sha256.

    Credentials never come from here: fsspec's provider chain finds them (AWS_* variables or
    ~/.aws for s3://, application default credentials for gs://)."""

    url: str
    """An fsspec URL: `s3://bucket/prefix`, `gs://bucket/prefix`, `file:///path`, ..."""
    endpoint_url: str | None = None
    """An S3-compatible service's address (MinIO, R2, a moto server); not a secret."""

    @classmethod
    def from_manifest(
        cls, data: dict[str, Any], locate: Locate | None = None
    ) -> StoreSettings | None:
        """From the manifest's `store:` (None without one). A URL carrying `user:password@`
        is refused: the manifest is shared, credentials are not."""
        raw: dict[str, Any] | None = data.get("store")
        if raw is None:
            return None
        for key in ("url", "endpoint_url"):
            value = raw.get(key)
            if isinstance(value, str) and (problem := store_url_problem(key, value)):
                raise ManifestError(
                    problem,
                    where=locate(("store", key)) if locate else "store",
                    hint=STORE_URL_HINT,
                )
        return cls(url=raw["url"], endpoint_url=raw.get("endpoint_url"))


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
STORE_URL_HINT = "e.g. `store: {url: s3://BUCKET/PREFIX}` or `{url: file:///srv/videos}`"


def store_url_problem(key: str, value: str) -> str | None:
    """Why store.<key> cannot be used, never echoing a password; None if it may be. The
    manifest is shared: credentials never belong in it; a relative path would depend on the
    current folder; memory:// vanishes when the command exits."""
    if _USERINFO.match(value):
        masked = _USERINFO.sub(r"\1***@", value)
        return (
            f"store.{key} must not carry credentials (user:password@); they come from the "
            f"environment (AWS_* variables, profile): {masked}"
        )
    if key == "endpoint_url":
        ok = re.match(r"^https?://", value)
        return None if ok else "store.endpoint_url must be an http(s):// address"
    if value.lower().startswith("memory:"):
        return "store.url memory:// lives only as long as one command: use a shared store"
    if value.lower().startswith("file:") and not value.lower().startswith("file:///"):
        return (
            f"store.url {value!r} is a relative path: use file:///absolute/path "
            "(an absolute path, so the store does not depend on the current folder)"
        )
    if not _SCHEME.match(value):
        return (
            f"store.url {value!r} is not a URL: use file:///absolute/path for a folder, "
            "or s3://BUCKET/PREFIX, gs://BUCKET/PREFIX"
        )
    return None


@dataclass(frozen=True)
class Limits:
    """Pacing, concurrency and budget caps for one run (the manifest's `limits:`)."""

    create_rps: float = 2.0
    request_rps: float = 10.0
    jobs_in_flight: int = 1000
    """A safety cap, far above rate × job time for usual jobs; the run says when it binds."""
    downloads: int = 4
    poll_interval: float = 5.0
    poll_batch: int = 100
    max_credits: int | None = None
    job_timeout: float = 1800.0
    request_timeout: float = 60.0
    max_download_bytes: int = 2 << 30
    """A result larger than this is abandoned: far above any video, it guards the disk."""
    download_stall_timeout: float = 60.0
    """Seconds without a byte before a download is abandoned (and retried)."""
    download_timeout: float = 600.0
    """Seconds one download may take in all: a server dripping a byte at a time is abandoned."""
    shared_budget: bool = True
    """The account limits all calls together: creates and polls draw on one budget of the
    larger of create_rps and request_rps (creates also stay under create_rps)."""

    max_jobs: int = MAX_JOBS
    """Most jobs the manifest may expand to: a matrix typo must not expand to millions."""
    webhook_max_age: float = 300.0
    """With `run --webhook-listen`: seconds a delivery's timestamp may be off the run's clock
    (older or ahead) before it is refused as stale."""
    webhook_poll_interval: float = 60.0
    """With `run --webhook-listen`: a job waiting for its webhook is polled only this long after
    its submit (or its last poll), a safety net for a webhook that never comes."""

    @classmethod
    def from_manifest(cls, data: dict[str, Any], locate: Locate | None = None) -> Limits:
        """From the manifest's `limits:`; every number must be finite (JSON Schema's bounds
        let NaN through, and an infinite interval would hang a run that has paid)."""
        raw: dict[str, Any] = data.get("limits", {})
        for f in fields(cls):
            value = raw.get(f.name)
            if isinstance(value, float) and not math.isfinite(value):
                where = locate(("limits", f.name)) if locate else "limits"
                raise ManifestError(
                    f"limits.{f.name} must be a finite number, got {value}",
                    where=where,
                    hint="give a plain number (see docs/manifest.md, limits)",
                )
        return cls(**raw)
