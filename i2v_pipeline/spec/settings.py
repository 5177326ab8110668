"""Campaign settings: where the jobs are bought (provider) and how fast (limits).

Read from the manifest's `provider:` and `limits:` sections, already schema-checked by
manifest.py; compiling the jobs themselves is campaign.py's business.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ManifestError

AKOOL_URL = "https://openapi.akool.com"
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
class Limits:
    """Pacing, concurrency and budget caps for one run (the manifest's `limits:`)."""

    create_rps: float = 2.0
    request_rps: float = 10.0
    jobs_in_flight: int = 50
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

    max_jobs: int = MAX_JOBS
    """Most jobs the manifest may expand to: a matrix typo must not expand to millions."""

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
