"""What the executor needs from a video provider. Implementations map HTTP to these types and
classify errors into the tree in errors.py; they never retry, sleep or touch files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Created:
    """A create's answer: one remote id per variant, and what it cost."""

    ids: tuple[str, ...]
    credits: int | None


@dataclass(frozen=True, slots=True)
class Result:
    """One remote video's state from a results query."""

    id: str
    status: int
    video_url: str | None = None
    credits: int | None = None
    duration: float | None = None


class Provider(Protocol):
    async def create(self, request: Mapping[str, Any]) -> Created:
        """Send one create (count = variants). Raises UnknownOutcomeError when the request may
        have reached the server without an answer; TransientError only when it provably did not
        (or the server said to try again)."""
        ...

    async def results(self, ids: Sequence[str]) -> list[Result]:
        """Current state of up to a few hundred ids in one request."""
        ...

    async def delete(self, ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """Delete remote videos: (deleted ids, {refused id: why})."""
        ...

    async def models(self) -> list[dict[str, Any]]: ...

    async def effects(self) -> list[dict[str, Any]]: ...

    async def credit(self) -> float: ...
