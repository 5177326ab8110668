"""What the executor needs from a video provider. Implementations map HTTP to these types and
classify errors into the tree in errors.py; they never retry, sleep or touch files.

The types here are ours, not any API's: a provider turns a CreateRequest into its wire body and
its answers into Created and Result (statuses as model.JobStatus). A second provider (a
recorded replay, another vendor) plugs in without touching the executor."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...model import ImageRef, JobSpec, JobStatus


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """One create as the executor asks for it: the job's canonical fields (JobSpec.request, as
    fingerprinted), its images resolved to URLs the API can fetch, and where to send webhooks."""

    fields: Mapping[str, Any]
    image_url: str
    last_image_url: str | None = None
    webhook_url: str | None = None

    @classmethod
    def for_job(
        cls, spec: JobSpec, image_url: Callable[[ImageRef], str], webhook_url: str | None
    ) -> CreateRequest:
        """The request for spec; image_url says how an image reaches the API."""
        last = image_url(spec.last_frame) if spec.last_frame is not None else None
        return cls(spec.request, image_url(spec.image), last, webhook_url or None)


@dataclass(frozen=True, slots=True)
class Created:
    """A create's answer: one remote id per variant, and what it cost."""

    ids: tuple[str, ...]
    credits: int | None


@dataclass(frozen=True, slots=True)
class Result:
    """One remote video's state from a results query."""

    id: str
    status: JobStatus
    video_url: str | None = None
    credits: int | None = None
    duration: float | None = None
    url_problem: str | None = None
    """Set when the API says the video is done (SUCCEEDED) but its result URL cannot be used:
    the job has failed, for this reason (never a URL's query string)."""


class Provider(Protocol):
    """A video API as the executor and the CLI use it."""

    async def create(self, request: CreateRequest) -> Created:
        """Send one create (count = variants). Raises UnknownOutcomeError when the request may
        have reached the server without an answer; TransientError only when it provably did not
        (or the server said to try again)."""
        ...

    async def update_audio(self, pre_video_id: str, request: Mapping[str, Any]) -> Created:
        """Add audio to a finished video: a new remote video (one id), paid. request is the
        canonical audio request (audio_type, audio_url). Errors as for create."""
        ...

    async def results(self, ids: Sequence[str]) -> list[Result]:
        """Current state of up to a few hundred ids in one request."""
        ...

    async def delete(self, ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """Delete remote videos: (deleted ids, {refused id: why})."""
        ...

    async def models(self) -> list[dict[str, Any]]:
        """The video models the account may use, as the API lists them."""
        ...

    async def effects(self) -> list[dict[str, Any]]:
        """The effects the API offers (code and name)."""
        ...

    async def credit(self) -> float:
        """The account's credit balance."""
        ...
