"""A manifest compiled into checked, fingerprinted job specs plus its run settings.

load -> expand -> catalog normalise -> job schema -> catalog semantics -> fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import manifest as manifest_mod
from . import schemas
from .catalog import Catalog
from .errors import CatalogError
from .expand import expand
from .fingerprint import FileHasher
from .manifest import Manifest
from .model import JobSpec
from .perf import gc_paused

AKOOL_URL = "https://openapi.akool.com"


@dataclass(frozen=True)
class ProviderSettings:
    endpoint: str = "emulator"
    """`emulator`, or a base URL."""
    api_key_env: str = "AKOOL_API_KEY"
    client_id_env: str = "AKOOL_CLIENT_ID"
    client_secret_env: str = "AKOOL_CLIENT_SECRET"
    webhook_url: str | None = None
    image_base_url: str | None = None

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> ProviderSettings:
        raw = {k: v for k, v in data.get("provider", {}).items() if k != "kind"}
        if raw.get("endpoint") == "akool":
            raw["endpoint"] = AKOOL_URL
        return cls(**raw)

    @property
    def is_emulator(self) -> bool:
        return self.endpoint == "emulator"


@dataclass(frozen=True)
class Limits:
    create_rps: float = 2.0
    request_rps: float = 10.0
    jobs_in_flight: int = 50
    downloads: int = 4
    poll_interval: float = 5.0
    poll_batch: int = 100
    max_credits: int | None = None
    job_timeout: float = 1800.0
    request_timeout: float = 60.0

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> Limits:
        return cls(**data.get("limits", {}))


@dataclass(frozen=True)
class Campaign:
    manifest: Manifest
    specs: list[JobSpec]
    output_dir: Path
    provider: ProviderSettings
    limits: Limits

    @property
    def lock_path(self) -> Path:
        return self.manifest.lock_path


def compile_manifest(man: Manifest, catalog: Catalog | None = None) -> Campaign:
    catalog = catalog or Catalog.load()
    with gc_paused():
        return _compile(man, catalog)


def _compile(man: Manifest, catalog: Catalog) -> Campaign:
    expansion = expand(man, FileHasher(), catalog.normalize)
    for spec in expansion.specs:
        if not schemas.is_valid("job", doc := spec.to_json()):
            where = f"{man.locate(expansion.origins[spec.id])} (job {spec.id})"
            schemas.validate("job", doc, what=where, error_class=CatalogError)
        problem = catalog.problem(spec.request, spec.last_frame is not None)
        if problem:
            where = f"{man.locate(expansion.origins[spec.id])} (job {spec.id})"
            raise CatalogError(problem, where=where)
    return Campaign(
        manifest=man,
        specs=expansion.specs,
        output_dir=expansion.output_dir,
        provider=ProviderSettings.from_manifest(man.data),
        limits=Limits.from_manifest(man.data),
    )


def load_campaign(path: str | Path, catalog: Catalog | None = None) -> Campaign:
    return compile_manifest(manifest_mod.load(path), catalog)
