"""Emulator settings: timing, accounts, rendering, and fault injection per endpoint.

Loaded from a YAML/JSON file (`i2v emulator serve --config FILE`) or built in code by tests.
Flags of `serve` override keys. Besides the flat keys below, the file takes two mappings:

    throttle: {rps: 5, burst: 5, scope: account, http_429: false}
        # a token bucket at rps/s, burst deep (default 1 s worth); past it code 1005 in an
        # HTTP 200 envelope (http_429: HTTP 429 + Retry-After). scope `account`: one budget for
        # every API call, getToken included; `key` (default): one per API key or bearer token.
        # Flags: --throttle-rps, --throttle-burst, --throttle-scope.
    faults: {"*": {http_5xx: 0.1}, create: {drop: 0.05}}     # per endpoint, see Faults

`state_file` (flag --state) keeps the account across restarts, SIGTERM and SIGKILL: a snapshot
plus an append-only journal fsynced every `journal_sync` s and compacted every
`journal_compact` records and on a clean stop (persist.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENDPOINTS = (
    "create",
    "batch",
    "results",
    "effects",
    "audio",
    "delete",
    "models",
    "token",
    "credit",
    "video",
)


THROTTLE_SCOPES = ("key", "account")


@dataclass(frozen=True)
class Faults:
    """Fault injection for one endpoint (or `*` for all). Shares are probabilities 0..1."""

    http_5xx: float = 0.0
    drop: float = 0.0
    """Close the connection without an answer (after the request was processed, for creates:
    the client cannot know whether it was created)."""
    drop_before: float = 0.0
    """Close the connection before processing anything (nothing was created)."""
    latency: float = 0.0
    """Seconds added to every answer."""
    truncate: float = 0.0
    """For video downloads: send only part of the file."""
    times: int | None = None
    """Inject each of the 5xx and truncation faults at most this many times on this endpoint
    (a fault that happens exactly once, for tests of what a retry recovers)."""


@dataclass(frozen=True)
class EmulatorConfig:
    """Every emulator knob: account, timing, prices, throttle and injected faults."""

    api_key: str = "emulator-key"
    client_id: str = "emulator-client-01"
    client_secret: str = "emulator-secret-24bytes!"
    uid: int = 101400
    team_id: str = "6805fb69e92d9edc7ca0b409"
    credits: float = 1_000_000
    queue_time: float = 0.2
    """Seconds a job stays at status 1 before it may start."""
    processing_time: float = 1.0
    """Seconds at status 2."""
    max_processing: int = 100
    """Jobs one account may have at status 2 at once; the rest wait in the queue."""
    fail_share: float = 0.0
    """Share of jobs that end in status 4 (credits refunded)."""
    expiry: float = 7 * 24 * 3600
    """Seconds a result URL stays valid; after that it answers 403."""
    fps: int = 4
    scale: float = 1.0
    """Preview scale for rendered frames (0.25 renders a 720p job at 180p)."""
    cache_dir: Path | None = None
    allow_file_urls: bool = True
    """Accept file:// image URLs (the emulator only; how local images reach it)."""
    throttle_rps: float | None = None
    """Token bucket: requests per second past which the emulator answers code 1005."""
    throttle_burst: float | None = None
    """Bucket size: requests allowed at once after a quiet spell (default: 1 s worth)."""
    throttle_scope: str = "key"
    """`key`: one bucket per API key or token; `account`: one bucket for every API call of the
    account (getToken included), as an account rate limit does."""
    throttle_http_429: bool = False
    """Answer throttling with HTTP 429 and Retry-After instead of an envelope."""
    webhook_retry: float = 0.5
    webhook_attempts: int = 8
    debug_routes: bool = False
    state_file: Path | None = None
    """Keep jobs across restarts, SIGTERM and SIGKILL (the embedded emulator acts like one
    persistent account): a snapshot plus `<state_file>.journal` (persist.py)."""
    journal_sync: float = 0.05
    """Seconds between group fsyncs of the journal (a killed process loses nothing it answered;
    a crashed machine loses at most this much)."""
    journal_compact: int = 10_000
    """Journal records after which it is folded into the snapshot (also on clean shutdown)."""
    seed: int = 7
    faults: dict[str, Faults] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.throttle_scope not in THROTTLE_SCOPES:
            raise ValueError(f"throttle scope must be one of {THROTTLE_SCOPES}")

    def faults_for(self, endpoint: str) -> Faults:
        """The faults injected on endpoint (its own, else `*`, else none)."""
        return self.faults.get(endpoint) or self.faults.get("*") or Faults()

    def with_(self, **changes: Any) -> EmulatorConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> EmulatorConfig:
        """From a YAML mapping (docs/emulator.md); ValueError names a bad key."""
        raw = dict(raw)
        faults = {k: Faults(**v) for k, v in (raw.pop("faults", None) or {}).items()}
        unknown = [k for k in faults if k not in (*ENDPOINTS, "*")]
        if unknown:
            raise ValueError(f"unknown endpoint in faults: {unknown}; use one of {ENDPOINTS}")
        throttle = raw.pop("throttle", None) or {}
        if not isinstance(throttle, dict) or set(throttle) - {"rps", "burst", "scope", "http_429"}:
            raise ValueError("throttle takes rps, burst, scope (key|account) and http_429")
        for key, value in throttle.items():
            raw[f"throttle_{key}"] = value
        for key in ("cache_dir", "state_file"):
            if raw.get(key):
                raw[key] = Path(raw[key])
        return cls(faults=faults, **raw)

    @classmethod
    def from_file(cls, path: Path) -> EmulatorConfig:
        """From a YAML file (see from_mapping)."""
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ValueError("the emulator config must be a mapping")
        return cls.from_mapping(raw)
