"""Small wording helpers shared by every layer's messages."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 job`, `2 jobs`, `0 jobs`; many for irregular plurals (`1 entry`, `2 entries`)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
