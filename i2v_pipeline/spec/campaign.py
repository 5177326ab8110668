"""A manifest compiled into checked, fingerprinted job specs (settings: see settings.py).

load -> expand -> catalog normalise -> job schema -> catalog semantics -> fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CatalogError, ConfigError, ManifestError
from ..model import JobSpec, PlanItem, Verify
from ..perf import gc_paused
from . import manifest as manifest_mod
from . import validation as schemas
from .catalog import Catalog, Problem
from .expand import expand
from .fingerprint import FileHasher
from .manifest import Manifest
from .provenance import field_loc
from .settings import Limits, ProviderSettings, StoreSettings


@dataclass(frozen=True)
class Campaign:
    """Everything a run needs from a manifest: checked specs, settings, where files go."""

    manifest: Manifest
    specs: list[JobSpec]
    output_dir: Path
    provider: ProviderSettings
    limits: Limits
    verify: Verify = "warn"
    """Duration/frame-size check of downloads: strict, warn (keep and record) or off."""
    store: StoreSettings | None = None
    """Where verified videos are shared (manifest `store:`), if anywhere."""

    @property
    def lock_path(self) -> Path:
        return self.manifest.lock_path


def compile_manifest(man: Manifest, catalog: Catalog | None = None) -> Campaign:
    """A loaded manifest to a Campaign; raises the first user error, with its location."""
    catalog = catalog or Catalog.load(ProviderSettings.from_manifest(man.data).endpoint)
    with gc_paused():
        return _compile(man, catalog)


FREE_TEXT = ("prompt", "negative_prompt")


class JobChecks:
    """job.schema.json and the catalog's checks for 100,000 jobs without 100,000 full ones.

    Jobs repeat everything but their free text: the full document is validated, and the
    catalog asked, once per distinct rest (request fields, images, tags), and each job's free
    text (id, output, prompt, negative prompt) checked against those properties' own
    subschemas, taken from the same file. Any failure reruns the full validation for its
    friendly message. The specs checked must outlive the checker (it keys images by id)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.seen: dict[tuple[Any, ...], Problem | None] = {}
        """Each rest that passed the full validation, and the catalog's problem with it."""
        props = schemas.load_schema("job")["properties"]
        request = props["request"]["properties"]
        self.id_ok = schemas.string_check(props["id"])
        self.output_ok = schemas.string_check(props["output"])
        self.text_ok = [(k, schemas.string_check(request[k])) for k in FREE_TEXT]

    def check(self, spec: JobSpec) -> tuple[bool, Problem | None]:
        """(whether spec passes job.schema.json, the catalog's problem with its request)."""
        request = spec.request
        # in the request's own order: a rare other order only costs one more full check
        items = tuple(request.items())
        if items and items[0][0] == "prompt" and "negative_prompt" not in request:
            rest = items[1:]  # as the expander builds it: the prompt first
        else:
            rest = tuple([(k, v) for k, v in items if k not in FREE_TEXT])
        # the catalog reads only rest and whether there is a last frame: both in the key; the
        # images by identity (their hash is Python code), held alive by the specs
        key = (rest, id(spec.image), id(spec.last_frame), spec.tags, spec.prompt_id is None)
        if key in self.seen:
            problem = self.seen[key]
        elif not schemas.is_valid("job", spec.to_json()):
            return False, self.catalog.problem(request, spec.last_frame is not None)
        else:
            problem = self.seen[key] = self.catalog.problem(request, spec.last_frame is not None)
        valid = self.id_ok(spec.id) and self.output_ok(spec.output)
        for k, ok in self.text_ok:
            if valid and k in request:
                valid = ok(request[k])
        return valid, problem


def _compile(man: Manifest, catalog: Catalog) -> Campaign:
    expansion = expand(man, FileHasher(), catalog.normalize)
    checks = JobChecks(catalog)
    seen: dict[str, str] = {}
    for spec in expansion.specs:
        twin = seen.setdefault(spec.fingerprint, spec.id)
        if twin != spec.id:
            # One video, two jobs: the lock is keyed by what is bought, so they would share
            # (and overwrite) one record. Several takes of one video are `variants`.
            raise ManifestError(
                f"jobs {twin} and {spec.id} ask for the same video (same image, prompt and "
                "settings)",
                where=man.locate(expansion.origins[spec.id]),
                hint="drop one, change a setting, or use `variants: N` for several takes",
            )
        valid, problem = checks.check(spec)
        if not valid:
            where = f"{man.locate(expansion.origins[spec.id])} (job {spec.id})"
            schemas.validate("job", spec.to_json(), what=where, error_class=CatalogError)
        if problem:
            # the line that set the wrong value, not the prompt the job came from
            loc = field_loc(man, expansion, spec, problem.field) or expansion.origins[spec.id]
            where = f"{man.locate(loc)} (job {spec.id})"
            raise CatalogError(problem.message, where=where, hint=problem.hint)
    return Campaign(
        manifest=man,
        specs=expansion.specs,
        output_dir=expansion.output_dir,
        provider=ProviderSettings.from_manifest(man.data),
        limits=Limits.from_manifest(man.data, man.locate),
        verify=man.data.get("verify", "warn"),
        store=StoreSettings.from_manifest(man.data, man.locate),
    )


def load_campaign(path: str | Path, catalog: Catalog | None = None) -> Campaign:
    """Read, check and compile the manifest at path."""
    with gc_paused():  # a 50 MB manifest is millions of values and marks: no GC rescans
        man = manifest_mod.load(path)
    return compile_manifest(man, catalog)


def check_reachable_images(
    campaign: Campaign, items: Sequence[PlanItem], *, emulator: bool
) -> None:
    """Refuse before buying when a real API would be sent a local image it cannot read."""
    if not emulator:
        check_images_reachable(campaign, [i.spec for i in items if i.action.submits and i.spec])


def check_images_reachable(campaign: Campaign, specs: Sequence[JobSpec]) -> None:
    """A remote API cannot read local files: a non-emulator endpoint needs image_base_url (or
    `url:` images). `validate` checks every job, `run` the ones it would buy."""
    if campaign.provider.is_emulator or campaign.provider.image_base_url:
        return
    local = next((s for s in specs if s.image.kind == "path"), None)
    if local is not None:
        man = campaign.manifest
        raise ConfigError(
            f"job {local.id} uses the local image {local.image.display}, which the endpoint "
            f"{campaign.provider.endpoint} cannot read",
            where=man.locate(("provider", "endpoint")),
            hint=(
                "publish the images and set provider.image_base_url to their base URL, use "
                '`url:` images, or, for a local emulator, `image_base_url: "file://"`'
            ),
        )
