"""Simple templates render without Jinja to exactly what Jinja renders, errors included."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2v_pipeline.errors import TemplateError
from i2v_pipeline.spec import templating
from i2v_pipeline.spec.simple import Template, simple_pieces
from i2v_pipeline.spec.templating import base_context, compile_template, render

NAMES = ["a", "b", "image", "none_var", "missing", "true", "None", "self", "loop", "range"]
ATTRS = ["id", "items", "missing", "__class__", "upper", "real"]
TEXT = st.text(alphabet="ab {}%#-\n\t'\"é", max_size=8)


def _ref(name: str, attrs: list[str], left: str, right: str) -> str:
    return "{{" + left + ".".join([name, *attrs]) + right + "}}"


refs = st.builds(
    _ref,
    st.sampled_from(NAMES),
    st.lists(st.sampled_from(ATTRS), max_size=2),
    st.sampled_from(["", " ", "  ", "- "]),
    st.sampled_from(["", " ", " -"]),
)
templates = st.lists(st.one_of(TEXT, refs), max_size=6).map("".join)


def _context() -> dict[str, Any]:
    ctx = base_context()
    ctx.update(a="A", b=5, image={"id": "img", "items": "x"}, none_var=None)
    return ctx


def _outcome(fn: Any) -> tuple[str, str]:
    try:
        return "ok", fn()
    except TemplateError as exc:
        return "error", exc.message


CONTEXT = _context()  # one context: a printed object shows its address


def _by_jinja(source: str) -> tuple[str, str]:
    """The render Jinja alone gives (the fast path switched off)."""

    def go() -> str:
        t = Template(source, None, templating._compile(source, "w", "template"))
        return render(t, CONTEXT, where="w", what="p")

    return _outcome(go)


@settings(max_examples=400, deadline=None)
@given(templates)
def test_simple_render_equals_jinja(source: str) -> None:
    """Whatever the source, the fast path gives Jinja's text or Jinja's error."""
    jinja = _by_jinja(source)
    if jinja[0] == "error" and "syntax error" in jinja[1]:
        assert simple_pieces(source) is None
        return
    fast = _outcome(lambda: render(compile_template(source, "w"), CONTEXT, where="w", what="p"))
    assert fast == jinja


@pytest.mark.parametrize(
    "source",
    ["Shot {{ image.id }} in {{ b }} light\n", "plain text", "{{a}}{{ a }}", "x {{ image.items }}"],
)
def test_common_templates_take_the_fast_path(source: str) -> None:
    """Prompts of text and variables skip Jinja's compiler, and still render as Jinja does."""
    t = compile_template(source, "w")
    assert t.pieces is not None and t.jinja is None
    assert render(t, CONTEXT, where="w", what="p") == _by_jinja(source)[1]


@pytest.mark.parametrize(
    "source",
    ["{{ true }}", "{{ self }}", "{% if a %}x{% endif %}", "{{ a|upper }}", "a\r\nb", "{{{ a }}"],
)
def test_other_templates_are_left_to_jinja(source: str) -> None:
    """Literals, special names, statements, filters and carriage returns go to Jinja."""
    assert simple_pieces(source) is None
