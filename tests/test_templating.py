"""Hostile templates: every render is bounded in time, memory and output, and fails cleanly."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2v_pipeline.cli import cli
from i2v_pipeline.errors import TemplateError
from i2v_pipeline.spec import sandbox
from i2v_pipeline.spec.campaign import load_campaign
from i2v_pipeline.spec.templating import MAX_OUTPUT, base_context, compile_template, render

from .conftest import WriteManifest

SECONDS = 3.0  # the budget's 1 s, plus tracemalloc's overhead on a loaded machine
PEAK_BYTES = 50_000_000

HOSTILE = {
    "nested-loops": "{% for a in range(10**5) %}{% for b in range(10**5) %}{% endfor %}"
    "{% endfor %}",
    "nested-loops-output": "{% for a in range(99999) %}{% for b in range(99999) %}x{% endfor %}"
    "{% endfor %}",
    "chained-power": "{{ 2**64**64**64**64**64 }}",  # Jinja's ** is left-associative
    "center": '{{ "x"|center(10**9) }}',
    "center-literal": '{{ "x"|center(1000000000) }}',
    "format-width": '{{ "%999999999s"|format(1) }}',
    "percent-width": '{{ "%999999999s" % 1 }}',
    "percent-star": '{{ "%*s" % (999999999, "x") }}',
    "str-format-width": '{{ "{:999999999}".format(1) }}',
    "str-format-nested": '{{ "{:{}}".format(1, 999999999) }}',
    "str-format-repeat": '{{ ("{0}" * 30000).format("x" * 90000) }}',
    "ljust": '{{ "x".ljust(10**9) }}',
    "zfill": '{{ "1".zfill(10**9) }}',
    "expandtabs": '{{ ("\\t" * 90000).expandtabs(90000) }}',
    "str-times": '{{ "x" * 10**9 }}',
    "list-times": "{{ [1] * 10**9 }}",
    "nested-list-times": "{{ ([[1] * 90000] * 90000)|string }}",
    "range": "{{ range(10**9)|list }}",
    "macro-recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "loop-recursion": "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
    "join-generated": '{{ range(90000)|map("string")|join("x" * 90000) }}',
    "str-join": '{{ ("x" * 90000).join(["a"] * 90000) }}',
    "wordwrap": '{{ ("a " * 45000)|wordwrap(1, wrapstring="x" * 90000) }}',
    "indent": '{{ ("a\\n" * 45000)|indent(90000) }}',
    "replace": '{{ ("a" * 90000)|replace("a", "b" * 90000) }}',
    "replace-empty": '{{ ("a" * 90000)|replace("", "b" * 90000) }}',
    "translate": '{{ ("a" * 90000).translate({97: "b" * 90000}) }}',
    "set-doubling-tilde": '{% set ns = namespace(x="ab") %}{% for i in range(60) %}'
    "{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}",
    "set-doubling-plus": '{% set ns = namespace(x="ab") %}{% for i in range(60) %}'
    "{% set ns.x = ns.x + ns.x %}{% endfor %}",
    "number-squaring": "{% set ns = namespace(x=2**64) %}{% for i in range(60) %}"
    "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 0 }}",
    "block-set": '{% set x %}{% for i in range(90000) %}{{ "y" * 90000 }}{% endfor %}'
    "{% endset %}{{ x|length }}",
    "macro-buffer": '{% macro m() %}{% for i in range(90000) %}{{ "y" * 90000 }}{% endfor %}'
    "{% endmacro %}{{ m()|length }}",
    "output": '{% for i in range(1000) %}{{ "y" * 1000 }}{% endfor %}',
    "sum-lists": "{{ ([[1]] * 90000)|sum(start=[])|length }}",
    "lipsum": "{{ lipsum(90000) }}",
    "tojson-indent": "{{ ([[[1]]] * 30000)|tojson(indent=90000) }}",
    "slice": "{{ []|slice(10**9)|list }}",
    "batch": "{{ [1]|batch(10**9, 0)|list }}",
    "huge-literal": "{{ " + "9" * 5000 + " }}",
    "deep-parentheses": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
}


def _manifest(template: str) -> str:
    body = "\n".join("      " + line for line in template.splitlines())
    return (
        "version: 1\nname: t\nimages:\n  - path: images/garden.png\n"
        f"prompts:\n  - id: evil\n    template: |-\n{body}\n"
    )


@pytest.mark.parametrize("template", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_template_is_a_quick_small_error(
    write_manifest: WriteManifest, template: str
) -> None:
    """A hostile template is a TemplateError naming the prompt and file, fast and small."""
    path = write_manifest(_manifest(template))
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(TemplateError) as info:
            load_campaign(path)
        elapsed = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < SECONDS
    assert peak < PEAK_BYTES
    text = info.value.render()
    assert f"{path}:7:" in text
    assert info.value.exit_code == 2
    assert "prompt" in text and "evil" in text


def test_validate_refuses_a_hostile_manifest_with_exit_2(write_manifest: WriteManifest) -> None:
    """`i2v validate` on a hostile manifest exits 2 with the location and no traceback."""
    path = write_manifest(_manifest(HOSTILE["macro-recursion"]))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:7:" in result.stderr and "sandbox's limits" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _render(template: str, **values: object) -> str:
    context = base_context()
    context.update(values)
    return render(compile_template(template, "m.yaml:1:1"), context, where="m.yaml:1:1", what="p")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ '%05d|%s'|format(42, 'x') }} {{ '%-4s|' % 'ab' }}", "00042|x ab  |"),
        ("{{ '{:_>6}|{}'.format('x', 123456789012) }}", "_____x|123456789012"),
        ("{% for x in xs %}{{ loop.index }}/{{ loop.length }} {% endfor %}", "1/3 2/3 3/3"),
        ("{% for x in [] %}x{% else %}none{% endfor %}", "none"),
        ("{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m(1) }}{{ m(2) }}", "[1][2]"),
        ("{% set b %}ab{% endset %}{{ b ~ 1 }}{% filter upper %}c{% endfilter %}", "ab1C"),
        ("{{ 'a b'|replace('a', 'c') }} {{ ','.join(xs) }} {{ xs|join('-') }}", "c b a,b,c a-b-c"),
        (
            "{{ 'Golden hour!'|slug }} {{ 2**63 }} {{ 'ab' * 3 }}",
            "Golden-hour 9223372036854775808 ababab",
        ),
        ("{{ 'x' * 60000 }}", "x" * 60000),
    ],
    ids=[
        "printf",
        "str-format",
        "loop",
        "loop-else",
        "macro",
        "blocks",
        "replace-join",
        "misc",
        "long",
    ],
)
def test_ordinary_templates_still_render(template: str, expected: str) -> None:
    """The bounds leave ordinary templates, up to MAX_OUTPUT characters, untouched."""
    assert _render(template, xs=["a", "b", "c"]) == expected


def test_output_cap_is_exact() -> None:
    """The rendered text may be MAX_OUTPUT characters long, not one more."""
    assert len(_render("{{ 'x' * n }}", n=MAX_OUTPUT)) == MAX_OUTPUT
    with pytest.raises(TemplateError, match=f"more than {MAX_OUTPUT:,} characters"):
        _render("{{ 'x' * n }}y", n=MAX_OUTPUT)


def test_step_budget_is_per_render(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each render gets a fresh budget of steps: many renders of a busy template all succeed."""
    monkeypatch.setattr(sandbox, "MAX_SECONDS", 60.0)  # steps, not the clock, under test
    busy = "{% for i in range(n) %}{% endfor %}ok"
    template = compile_template(busy, "w")
    context = {**base_context(), "n": sandbox.MAX_OPS // 2}
    for _ in range(3):
        assert render(template, context, where="w", what="p") == "ok"
    with pytest.raises(TemplateError, match="steps"):
        _render("{% for i in range(n) %}{% for j in range(3) %}{% endfor %}{% endfor %}", n=70_000)


_BIG = st.sampled_from(["0", "1", "7", "64", "99999", "10**5", "10**9", "2**64", "-1"])
_TEXT = st.sampled_from(["'x'", "'ab\\t'", "'%s%s'", "'{0}{0}'", "'a\\nb'", "''", "[1, 2]"])


def _expr(depth: int) -> st.SearchStrategy[str]:
    leaf = st.one_of(_BIG, _TEXT)
    if depth == 0:
        return leaf
    sub = _expr(depth - 1)
    binop = st.tuples(sub, st.sampled_from(["*", "**", "+", "~", "%", "//"]), sub).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    )
    flt = st.tuples(
        sub,
        st.sampled_from(
            [
                "center",
                "indent",
                "wordwrap",
                "replace('x', 'xx')",
                "join",
                "format",
                "batch",
                "slice",
                "truncate",
                "string",
                "list",
                "sum",
                "tojson",
                "length",
                "upper",
            ]
        ),
        _BIG,
    ).map(lambda t: f"({t[0]}|{t[1]}({t[2]}))" if "(" not in t[1] else f"({t[0]}|{t[1]})")
    method = st.tuples(
        _TEXT, st.sampled_from(["center", "ljust", "zfill", "expandtabs", "format", "join"]), sub
    ).map(lambda t: f"{t[0]}.{t[1]}({t[2]})")
    return st.one_of(leaf, binop, flt, method)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expr(3), st.booleans())
def test_random_expressions_render_or_fail_cleanly(expr: str, looped: bool) -> None:
    """Any mix of operators, filters and big numbers renders or is a TemplateError, quickly."""
    template = (
        f"{{% for i in range(3) %}}{{{{ {expr} }}}}{{% endfor %}}"
        if looped
        else f"{{{{ {expr} }}}}"
    )
    start = time.monotonic()
    try:
        text = _render(template)
    except TemplateError:
        pass
    else:
        assert len(text) <= MAX_OUTPUT
    assert time.monotonic() - start < SECONDS


@pytest.mark.parametrize(
    "source",
    [
        "{{ (10**5000)|string }}",
        "{{ 10**5000 }}",
        '{{ "%d"|format(10**4100) }}',
        '{{ "%d" % 10**4100 }}',
        "{{ 10**3000 * 10**3000 }}",
    ],
)
def test_numbers_too_long_to_print_are_a_size_limit(source: str) -> None:
    """An integer past Python's int-to-text digit limit is the sandbox's size limit, in words
    (no raw `sys.set_int_max_str_digits()` ValueError)."""
    template = compile_template(source, "m.yaml:1:1")
    with pytest.raises(TemplateError) as info:
        render(template, base_context(), where="m.yaml:1:1", what="prompt")
    assert "a number would have more than 4,000 digits" in info.value.message
    assert "set_int_max_str_digits" not in info.value.render()


def test_long_numbers_within_the_limit_print() -> None:
    """A 4,000-digit number is within the limit and renders in full."""
    template = compile_template("{{ (10**3999)|string|length }}", "m.yaml:1:1")
    assert render(template, base_context(), where="m.yaml:1:1", what="prompt") == "4000"
