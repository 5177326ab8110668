"""A manifest's explicit `jobs:` list: each entry names its image and its prompt (or gives its
own template), its fields, variables, tags and output path."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ManifestError
from ..model import JobSpec
from .images import Image, Loc
from .manifest import Manifest
from .prompts import Prompt
from .selectors import tags_of
from .templating import compile_template

if TYPE_CHECKING:  # expand imports this module
    from .expand import _Expander

T = TypeVar("T")


def explicit_jobs(
    x: _Expander, images: list[Image], prompts: list[Prompt]
) -> Iterator[tuple[JobSpec, Loc]]:
    """The specs of the explicit jobs, in order, each with where it is in the manifest."""
    data = x.m.data
    by_id = {im.id: im for im in images}
    by_prompt = {p.id: p for p in prompts}
    for i, job in enumerate(data.get("jobs", [])):
        loc: Loc = ("jobs", i)
        image = _named(by_id, job, "image", x.m, loc)
        if "prompt" in job:
            prompt = _named(by_prompt, job, "prompt", x.m, loc)
            template, prompt_id = prompt.template, prompt.id
            layers, var_layers = (
                [prompt.fields, job.get("fields", {})],
                [prompt.vars, job.get("vars", {})],
            )
            ptags = prompt.tags
        else:
            template = compile_template(job["template"], _at(x.m, (*loc, "template")))
            prompt_id, layers, var_layers, ptags = (
                None,
                [job.get("fields", {})],
                [job.get("vars", {})],
                (),
            )
        output = (
            compile_template(job["output"], _at(x.m, (*loc, "output"))) if "output" in job else None
        )
        tags = tags_of(image.tags, ptags, tuple(job.get("tags", ())))
        yield (
            x.job(
                job["id"],
                image,
                template,
                prompt_id,
                x.layers(image, layers, var_layers),
                tags,
                loc,
                output,
                raw=layers,
            ),
            loc,
        )


def _at(m: Manifest, loc: Loc) -> Callable[[], str]:
    """Where loc is, worked out only if an error needs it (100,000 explicit jobs)."""
    return lambda: m.locate(loc)


def _named(table: Mapping[str, T], job: Mapping[str, Any], kind: str, m: Manifest, loc: Loc) -> T:
    """The image or prompt an explicit job names by id, or an error listing the ids there are."""
    found = table.get(job[kind])
    if found is None:
        raise ManifestError(
            f"job {job['id']}: no {kind} with id `{job[kind]}`",
            where=m.locate((*loc, kind)),
            hint=f"{kind} ids: {', '.join(sorted(table)[:10])}",
        )
    return found
