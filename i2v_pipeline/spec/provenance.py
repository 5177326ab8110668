"""Which manifest line set a job's request field: for errors about a value, not about a job.

A job's fields are layered (later wins): `defaults:`, the image's `fields:`, the prompt's
`fields:`, then the matrix entry, the `include:` entry or the explicit job's `fields:`. A catalog
error (a duration the model does not offer, say) is only fixable where the value was written,
so it points there, not at the prompt template the job came from. Only errors pay for this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..model import JobSpec
from .expand import AUDIO_TYPES, FIELDS, Expansion
from .images import Loc
from .manifest import Manifest


def field_loc(man: Manifest, expansion: Expansion, spec: JobSpec, name: str) -> Loc | None:
    """The manifest path of the value that set field `name` of spec, or None if no line did
    (a built-in default)."""
    origin = expansion.origins[spec.id]
    data = man.data
    layers: list[tuple[Mapping[str, Any], Loc]] = [(data.get("defaults", {}), ("defaults",))]
    image = next((im for im in expansion.images if im.ref == spec.image), None)
    if image is not None:
        layers.append((image.fields, (*image.loc, "fields")))
    prompt = next((p for p in expansion.prompts if p.id == spec.prompt_id), None)
    job_has_prompt = origin[0] != "jobs" or "prompt" in data["jobs"][origin[1]]
    if prompt is not None and job_has_prompt:
        layers.append((prompt.fields, (*prompt.loc[:-1], "fields")))
    if origin[0] == "include":
        layers.append((data["include"][origin[1]], origin))
    elif origin[0] == "jobs":
        layers.append((data["jobs"][origin[1]].get("fields", {}), (*origin, "fields")))
    else:
        matrix: Mapping[str, Sequence[Any]] = data.get("matrix", {})
        if name in matrix:
            return ("matrix", name, _matrix_index(matrix[name], spec, name))
    for values, base in reversed(layers):
        if name in values:
            return (*base, name)
    return None


def _matrix_index(values: Sequence[Any], spec: JobSpec, name: str) -> int:
    """The matrix entry this job took (its request holds the value, in API form)."""
    want = spec.request.get(FIELDS[name])
    for i, v in enumerate(values):
        api = AUDIO_TYPES.get(v) if name == "audio" else v
        if api == want or (
            name == "last_frame" and spec.last_frame and v == spec.last_frame.display
        ):
            return i
    return 0
