"""Campaign settings: where the jobs are bought (provider) and how fast (limits).

Read from the manifest's `provider:` and `limits:` sections, already schema-checked by
manifest.py; compiling the jobs themselves is campaign.py's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AKOOL_URL = "https://openapi.akool.com"


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
    shared_budget: bool = True
    """The account limits all calls together: creates and polls draw on one budget of the
    larger of create_rps and request_rps (creates also stay under create_rps)."""

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> Limits:
        return cls(**data.get("limits", {}))
