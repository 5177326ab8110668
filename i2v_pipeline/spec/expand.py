"""Expand a manifest into fully rendered job specs: images × prompts × matrix − exclude + include,
plus the explicit `jobs:` list. Deterministic: the same manifest gives the same jobs, in the
same order, with the same ids.

Pure apart from hashing local images, which goes through the injected `hasher`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ManifestError, TemplateError
from ..model import ImageRef, JobSpec
from .audio import KEY as AUDIO_KEY
from .audio import AudioStages, block_loc
from .audio import output_paths as audio_paths
from .explicit import explicit_jobs
from .fingerprint import fingerprint_of
from .images import Hasher, Image, Loc, is_file, is_inside, resolve_images, url_ref
from .manifest import Manifest
from .outputs import (
    check_protected,
    confine,
    input_clash,
    input_files,
    output_folder,
    reserved_outputs,
)
from .prompts import Prompt, resolve_prompts
from .selectors import SELECTOR_KEYS, check_selectors, matches, tags_of
from .simple import Template
from .size import check_size
from .templating import base_context, compile_template, is_template, render, slug

# manifest field name -> AKOOL request field name
FIELDS: dict[str, str] = {
    "model": "model_name",
    "resolution": "resolution",
    "duration": "video_length",
    "negative_prompt": "negative_prompt",
    "extend_prompt": "extend_prompt",
    "effect": "effect_code",
    "audio": "audio_type",
    "audio_url": "audio_url",
    "last_frame": "last_image_url",
    "variants": "count",
    "generate_audio": "generate_audio",
    "premium": "is_premium_model",
}
AUDIO_TYPES = {"ai": 1, "custom": 2, "none": 3}
DEFAULT_FIELDS: dict[str, Any] = {
    "model": "AkoolImage2VideoFastV1",
    "resolution": "720p",
    "duration": 5,
    "variants": 1,
}
DEFAULT_OUTPUT_PATH = "{{ id }}.mp4"
Normalize = Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Expansion:
    """What expanding a manifest yields: its specs, their output folder and origins."""

    specs: list[JobSpec]
    output_dir: Path
    origins: dict[str, Loc]
    """Where in the manifest each job comes from, for later error messages."""
    images: Sequence[Image] = ()
    prompts: Sequence[Prompt] = ()
    """The resolved images and prompts, to find which line set a field (spec/provenance.py)."""


class _Expander:
    def __init__(self, manifest: Manifest, hasher: Hasher, normalize: Normalize) -> None:
        self.m = manifest
        self.hasher = hasher
        self.normalize = normalize
        data = manifest.data
        self.vars: dict[str, Any] = data.get("vars", {})
        self.base = base_context()
        self.defaults: dict[str, Any] = {**DEFAULT_FIELDS, **data.get("defaults", {})}
        output = data.get("output", {})
        self.output_dir = output_folder(manifest, output.get("dir", f"out/{manifest.name}"))
        self.reserved = reserved_outputs(manifest, self.output_dir)
        self.output_where = manifest.locate(("output", "path"))
        self.output_template = compile_template(
            output.get("path", DEFAULT_OUTPUT_PATH), self.output_where
        )
        self.negative_cache: dict[str, Template | str] = {}
        self.where_cache: dict[Loc, str] = {}
        self.image_cache: dict[int, tuple[Image, dict[str, Any]]] = {}
        self.prompts: dict[str | None, dict[str, Any]] = {}
        """`prompt` as templates see it (its id), one dict per prompt."""
        self.audio_wheres: dict[str, str] = {}
        """Job id -> where its `update_audio:` block is written (for output clashes)."""
        self.last_frames: dict[str, ImageRef] = {}
        self.audio = AudioStages(lambda path, where, job_id: self.confine(path, where, job_id))

    def request(
        self,
        fields: Mapping[str, Any],
        prompt: str,
        ctx: Mapping[str, Any],
        where: str,
        job_id: str,
    ) -> tuple[dict[str, Any], ImageRef | None]:
        req: dict[str, Any] = {"prompt": prompt}
        last_frame: ImageRef | None = None
        for name, value in fields.items():
            if value is None:
                continue
            api = FIELDS[name]
            if name == "audio":
                value = AUDIO_TYPES[value]
            elif name == "negative_prompt":
                value = self.negative(value, ctx, where, job_id)
            elif name == "last_frame":
                last_frame = self.last_frame(value, where)
                continue
            req[api] = value
        return req, last_frame

    def negative(self, text: str, ctx: Mapping[str, Any], where: str, job_id: str) -> str:
        cached = self.negative_cache.get(text)
        if cached is None:
            cached = compile_template(text, where) if is_template(text) else text
            self.negative_cache[text] = cached
        if isinstance(cached, str):
            return cached
        return render(cached, ctx, where=where, what=f"job {job_id}: negative_prompt")

    def last_frame(self, value: str, where: str) -> ImageRef:
        ref = self.last_frames.get(value)
        if ref is None:
            if "://" in value:
                ref = url_ref(value, None)
            else:
                path = (self.m.base_dir / value).resolve()
                if not is_inside(path, self.m.base_dir):
                    raise ManifestError(
                        f"last_frame image {value} is outside the manifest's folder ({path})",
                        where=where,
                        hint="copy it into the manifest's folder, or give a URL",
                    )
                if not is_file(path):
                    raise ManifestError(f"last_frame image not found: {value}", where=where)
                ref = ImageRef("path", str(path), value, self.hasher(path))
            self.last_frames[value] = ref
        return ref

    def job(
        self,
        job_id: str,
        image: Image,
        template: Template,
        prompt_id: str | None,
        layers: tuple[dict[str, Any], dict[str, Any]],
        tags: tuple[str, ...],
        loc: Loc,
        output: Template | None = None,
        raw: Sequence[Mapping[str, Any]] = (),
    ) -> JobSpec:
        """One job; layers: its request fields and its template variables (fresh dicts); raw:
        the field layers after the image's, only to say where an `update_audio:` came from."""
        fields, ctx = layers
        audio_block = fields.pop(AUDIO_KEY, None)  # a stage of its own, not a request field
        ctx.update(fields)
        # one dict per image and per prompt, shared by its jobs' contexts: the sandbox is
        # immutable, so no template can change them
        ctx["image"] = self.image_vars(image)
        ctx["prompt"] = self.prompts.get(prompt_id) or self.prompts.setdefault(
            prompt_id, {"id": prompt_id}
        )
        where = self.where_cache.get(loc)
        if where is None:
            where = self.where_cache[loc] = self.m.locate(loc)
        text = render(template, ctx, where=where, what=f"job {job_id}: prompt")
        if not text:
            raise TemplateError(f"job {job_id}: the prompt renders empty", where=where)
        raw_request, last_frame = self.request(fields, text, ctx, where, job_id)
        request = self.normalize(raw_request)
        ctx["id"] = job_id
        out_where = self.output_where
        rendered = render(
            output or self.output_template, ctx, where=out_where, what=f"job {job_id}: output path"
        )
        path = self.confine(rendered, out_where, job_id)
        fingerprint = fingerprint_of(image.ref, last_frame, request)
        audio = None
        if audio_block is not None:  # (an empty block too: the stage says what it lacks)
            audio_where = self.audio_where(image, raw, loc, where) if audio_block else where
            if audio_block:
                self.audio_wheres[job_id] = audio_where
            audio = self.audio.stage(audio_block, ctx, where=audio_where, job_id=job_id)
        return JobSpec(
            job_id, image.ref, request, path, prompt_id, last_frame, tags, fingerprint, audio
        )

    def image_vars(self, image: Image) -> dict[str, Any]:
        """`image` as templates see it (id, tags, src), built once per image."""
        found = self.image_cache.get(id(image))
        if found is None or found[0] is not image:
            found = (image, {"id": image.id, "tags": image.tags, "src": image.ref.display})
            self.image_cache[id(image)] = found
        return found[1]

    def audio_where(
        self, image: Image, layers: Sequence[Mapping[str, Any]], loc: Loc, fallback: str
    ) -> str:
        """Where the job's `update_audio:` block was written, for its errors (else fallback)."""
        found = block_loc(self.m.data.get("defaults", {}), image.fields, image.loc, layers, loc)
        if found is None:
            return fallback
        cached = self.where_cache.get(found)
        if cached is None:
            cached = self.where_cache[found] = self.m.locate(found)
        return cached

    def layers(
        self,
        image: Image,
        layers: Sequence[Mapping[str, Any]],
        var_layers: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A job's request fields and template variables, later layers winning."""
        fields = {**self.defaults, **image.fields}
        for layer in layers:
            fields.update(layer)
        ctx = {**self.base, **self.vars, **image.vars}
        for layer in var_layers:
            ctx.update(layer)
        return fields, ctx

    def confine(self, rendered: str, where: str, job_id: str) -> str:
        path = confine(rendered, where=where, job_id=job_id)
        check_protected(path, self.reserved, where=where, job_id=job_id)
        return path


def _matrix(data: Mapping[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    matrix: dict[str, list[Any]] = data.get("matrix", {})
    keys = list(matrix)
    return keys, list(itertools.product(*(matrix[k] for k in keys)))


def _split(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Matrix/include values: request fields on one side, template variables on the other."""
    fields = {k: v for k, v in values.items() if k in FIELDS}
    return fields, {k: v for k, v in values.items() if k not in FIELDS and k not in SELECTOR_KEYS}


def _generate(
    x: _Expander, images: list[Image], prompts: list[Prompt]
) -> Iterator[tuple[JobSpec, Loc]]:
    data = x.m.data
    keys, combos = _matrix(data)
    varying = [k for k in keys if len(data["matrix"][k]) > 1]
    excludes = data.get("exclude", [])
    check_selectors(x.m, keys, "exclude")
    # per combination, once: its values, fields, variables and id suffix
    prepared = []
    for combo in combos:
        values = dict(zip(keys, combo, strict=True))
        fields, vars_ = _split(values)
        suffix = "".join(f".{slug(values[k])}" for k in varying)
        prepared.append((values, fields, vars_, suffix))
    tails: dict[tuple[int, int], tuple[dict[str, Any], dict[str, Any]]] = {}
    for image in images:
        # the layers of a job (see _Expander.layers), merged once per image and per prompt x
        # combination rather than once per job: the same fields and values, in the same order
        head_fields = {**x.defaults, **image.fields}
        head_vars = {**x.base, **x.vars, **image.vars}
        for p, prompt in enumerate(prompts):
            tags = tags_of(image.tags, prompt.tags)
            stem = f"{image.id}.{prompt.id}"
            for c, (values, fields, vars_, suffix) in enumerate(prepared):
                if excludes and any(matches(sel, image, prompt, values) for sel in excludes):
                    continue
                tail = tails.get((p, c))
                if tail is None:
                    tail = tails[p, c] = ({**prompt.fields, **fields}, {**prompt.vars, **vars_})
                spec = x.job(
                    stem + suffix,
                    image,
                    prompt.template,
                    prompt.id,
                    ({**head_fields, **tail[0]}, {**head_vars, **tail[1]}),
                    tags,
                    prompt.loc,
                    raw=(prompt.fields, fields),
                )
                yield spec, prompt.loc
    for i, inc in enumerate(data.get("include", [])):
        fields, vars_ = _split(inc)
        extra = [slug(v) for k, v in inc.items() if k not in SELECTOR_KEYS]
        targets = [
            (im, p)
            for im in images
            for p in prompts
            if matches({k: v for k, v in inc.items() if k in ("image", "prompt", "tag")}, im, p, {})
        ]
        if not targets:
            raise ManifestError(
                "include matches no image and prompt", where=x.m.locate(("include", i))
            )
        for image, prompt in targets:
            job_id = ".".join([image.id, prompt.id, *extra])
            yield (
                x.job(
                    job_id,
                    image,
                    prompt.template,
                    prompt.id,
                    x.layers(image, [prompt.fields, fields], [prompt.vars, vars_]),
                    tags_of(image.tags, prompt.tags),
                    ("include", i),
                    raw=(prompt.fields, fields),
                ),
                ("include", i),
            )
    yield from explicit_jobs(x, images, prompts)


def expand(
    manifest: Manifest, hasher: Hasher, normalize: Normalize = lambda request: request
) -> Expansion:
    """Every job of the manifest, rendered and fingerprinted; ids and output paths checked for
    clashes. normalize adjusts a request before it is fingerprinted (the catalog's)."""
    x = _Expander(manifest, hasher, normalize)
    images = resolve_images(manifest, hasher)
    prompts = resolve_prompts(manifest)
    if not prompts and not manifest.data.get("jobs"):
        raise ManifestError(
            "the manifest has no prompts and no jobs",
            where=manifest.locate(()),
            hint="add a prompts: list (or explicit jobs:)",
        )
    check_size(manifest, images, prompts)
    specs: list[JobSpec] = []
    origins: dict[str, Loc] = {}
    outputs: dict[str, str] = {}
    audio: set[str] = set()  # the output paths the audio stage writes
    for spec, loc in _generate(x, images, prompts):
        job_id = spec.id
        if job_id in origins:
            raise ManifestError(
                f"duplicate job id `{job_id}` (first from {manifest.locate(origins[job_id])})",
                where=manifest.locate(loc),
                hint="give explicit ids, or add the differing matrix key to the exclude/include",
            )
        origins[job_id] = loc
        videos = spec.output_paths()
        for n, path in enumerate(videos if spec.audio is None else [*videos, *audio_paths(spec)]):
            key = path.casefold()
            if key in outputs:
                raise _clash(
                    x, manifest, (outputs[key], key in audio), (job_id, n >= len(videos)), path
                )
            outputs[key] = job_id
            if n >= len(videos):
                audio.add(key)
        specs.append(spec)
    inputs = input_files([*(im.ref for im in images), *x.last_frames.values()], manifest.base_dir)
    clash = input_clash(x.output_dir, outputs, inputs)
    if clash:
        raise ManifestError(
            f"job {clash[0]}: its output would overwrite the input image {clash[1]}",
            where=_output_where(manifest, origins[clash[0]]),
            hint="write videos to their own folder: set output.dir (e.g. `out`)",
        )
    return Expansion(specs, x.output_dir, origins, images, prompts)


def _clash(
    x: _Expander, manifest: Manifest, first: tuple[str, bool], then: tuple[str, bool], path: str
) -> ManifestError:
    """Two jobs (id, True for an `update_audio.output`) writing one path: the error names which
    setting each side comes from, and points at an update_audio block when one is involved."""
    if not (first[1] or then[1]):
        return ManifestError(
            f"jobs {first[0]} and {then[0]} both write {path}",
            where=manifest.locate(("output", "path")),
            hint="put {{ id }} (or every matrix value) in output.path",
        )

    def side(job: tuple[str, bool]) -> str:
        return f"job {job[0]}'s " + ("update_audio.output" if job[1] else "output.path")

    audio_job = then[0] if then[1] else first[0]
    return ManifestError(
        f"{side(first)} and {side(then)} both write {path}",
        where=x.audio_wheres.get(audio_job, manifest.locate(("output", "path"))),
        hint="give update_audio.output a path of its own, e.g. `{{ id }}.audio.mp4` (the "
        "default), or change output.path",
    )


def _output_where(manifest: Manifest, loc: Loc) -> str:
    """Where a job's output path comes from: its own `output:` (explicit jobs) or output.path."""
    if loc[:1] == ("jobs",) and "output" in manifest.data["jobs"][int(loc[1])]:
        return manifest.locate((*loc, "output"))
    return manifest.locate(("output", "path"))
