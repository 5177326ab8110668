"""Small wording helpers shared by every layer's messages."""

from __future__ import annotations

import re


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 job`, `2 jobs`, `0 jobs`; many for irregular plurals (`1 entry`, `2 entries`)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls (ESC, CR, BEL, the 8-bit CSI, …), line separators and bidirectional
overrides: what lets a text rewrite a terminal's screen or read other than it is."""
_SHOWN = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """text safe to print on a terminal: its controls, line separators and bidi overrides
    shown escaped (`\\n`, `\\u001b`, `\\u202e`), so a manifest's or a server's text cannot
    move the cursor, recolour or hide lines, or break one line in two."""
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(lambda m: _SHOWN.get(c := m.group(), f"\\u{ord(c):04x}"), text)
