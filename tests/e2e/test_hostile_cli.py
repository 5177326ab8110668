"""Property tests of the real CLI under attack: hostile manifests and a hostile AKOOL server.

Whatever a pull request puts in a manifest, and whatever a server answers, `i2v` ends with an
exit code of 0, 1, 2 or 3, never a traceback, within a few seconds and a bounded amount of memory.
Seeds are derandomized so CI sees the same examples every time.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2v_pipeline.cli import cli
from i2v_pipeline.emulator import EmulatorConfig
from i2v_pipeline.run import retry
from i2v_pipeline.run.providers import akool
from i2v_pipeline.spec.settings import MAX_JOBS

from ..conftest import IMAGES, ThreadedEmulator

EXIT_CODES = {0, 1, 2, 3}
SECONDS = 5.0
RSS_GROWTH_MB = 400
KEY = "emulator-key"

BASE = {
    "version": 1,
    "name": "prop",
    "images": [{"path": "images/garden.png"}],
    "prompts": [{"id": "a", "template": "A {{ mood }} scene of {{ image.id }}"}],
    "matrix": {"mood": ["calm", "bold"]},
    "output": {"dir": "out"},
}
KEYS = [
    "version", "name", "images", "prompts", "matrix", "exclude", "jobs", "output", "limits",
    "provider", "defaults", "tags", "webhook", "x",
]  # fmt: skip
TEMPLATES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'] }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ 9**9**9 }}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{% for a in range(999) %}{% for b in range(999) %}{{ a }}{% endfor %}{% endfor %}",
    "{{ self.__init__.__globals__ }}",
    "{{ undefined_name }}",
    "{{ image.path.read_text() }}",
    "{% include '/etc/passwd' %}",
    "{% extends 'x' %}",
    "{{ (('a' * 1000) ~ ('b' * 1000)) * 1000 }}",
    "{{ [1] * 10**8 }}",
    "{{ '%s' % ('x' * 10**7) }}",
    "{{ {}.update.__self__ }}",
    "{% set x = [] %}{% for i in range(10**6) %}{% do x.append(i) %}{% endfor %}",
    "{{ mood|attr('__class__') }}",
    "{{ '{{' }}{% raw %}{{ x }}{% endraw %}",
    "{{",
    "{% for %}",
    "\x00\ud7ff",
]
PATHS = [
    "../../etc/passwd", "/etc/passwd", "~/.ssh/id_rsa", "images/../../x.png", "images/\x00.png",
    "a" * 5000, "images/*", "**/*.png", "../**/*.png", "C:\\Windows\\win.ini", "",
    "file:///etc/passwd", "http://169.254.169.254/latest", "images/garden.png/..", ".", "/",
    "m.yaml", "m.lock.yaml", "out/../m.lock.yaml", "\n", "images/[", "images/{a,b}.png",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(PATHS + TEMPLATES)
)
structures = st.recursive(
    scalars,
    lambda c: (
        st.lists(c, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), c, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def manifests(draw: st.DrawFn) -> str:
    """A manifest text: garbage, a random structure, or a good manifest with a hostile part."""
    kind = draw(st.sampled_from(["text", "structure", "key", "template", "path", "matrix"]))
    if kind == "text":
        return draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
    if kind == "structure":
        return yaml.safe_dump(draw(structures))
    doc: dict[str, Any] = json.loads(json.dumps(BASE))
    if kind == "key":
        doc[draw(st.sampled_from(KEYS))] = draw(structures)
    elif kind == "template":
        parts = draw(
            st.lists(st.sampled_from(TEMPLATES) | st.text(max_size=20), min_size=1, max_size=3)
        )
        doc["prompts"][0]["template"] = "".join(parts)
    elif kind == "path":
        where = draw(st.sampled_from(["image", "glob", "output", "last"]))
        value = draw(st.sampled_from(PATHS) | st.text(max_size=30))
        if where == "image":
            doc["images"] = [{"path": value}]
        elif where == "glob":
            doc["images"] = [{"glob": value}]
        elif where == "output":
            doc["output"] = {"dir": value, "pattern": draw(st.sampled_from(PATHS))}
        else:
            doc["prompts"][0]["last_image"] = value
    else:
        # either small enough to expand in well under a second, or past MAX_JOBS (refused)
        keys, width = draw(
            st.tuples(st.integers(1, 8), st.integers(1, 40)).filter(
                lambda kw: kw[1] ** kw[0] <= 500 or kw[1] ** kw[0] > MAX_JOBS
            )
        )
        doc["matrix"] = {f"k{i}": list(range(width)) for i in range(keys)}
        doc["prompts"][0]["template"] = "{{ k0 }}" * draw(st.integers(1, 3))
    return yaml.safe_dump(doc, allow_unicode=True)  # fmt: skip


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check(result: Result, started: float, baseline: float, what: str) -> None:
    """The promise: a known exit code, no traceback, quick, bounded memory."""
    elapsed = time.monotonic() - started
    out = result.output + (result.stderr if result.stderr_bytes else "")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        what,
        repr(result.exception),
    )
    assert result.exit_code in EXIT_CODES, (what, result.exit_code, out[-2000:])
    assert "Traceback" not in out, (what, out[-2000:])
    assert elapsed < SECONDS, (what, elapsed)
    assert rss_mb() < baseline + RSS_GROWTH_MB, (what, rss_mb(), baseline)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prop")
    shutil.copytree(IMAGES, folder / "images")
    return folder


@pytest.mark.slow
@settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=manifests(), command=st.sampled_from(["validate", "expand", "plan"]))
def test_hostile_manifests_end_cleanly(
    text: str, command: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any manifest text: validate, expand and plan exit 0-3, no traceback, < 5 s, bounded RSS."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(project / "cache"))
    path = project / "m.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    args = {"validate": [], "expand": ["--json"], "plan": ["--json"]}[command]
    baseline = rss_mb()
    started = time.monotonic()
    result = CliRunner().invoke(cli, [command, str(path), *args], catch_exceptions=True)
    check(result, started, baseline, f"{command} {text[:300]!r}")


def test_huge_matrix_is_refused_before_it_is_built(project: Path) -> None:
    """8 matrix keys of 40 values (6.5e12 jobs) exit 2 at once, naming the count and the place;
    it used to build the product until memory ran out."""
    doc: dict[str, Any] = json.loads(json.dumps(BASE))
    doc["matrix"] = {f"k{i}": list(range(40)) for i in range(8)}
    path = project / "huge.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    baseline = rss_mb()
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["plan", str(path), "--json"])
    check(result, started, baseline, "huge matrix")
    assert result.exit_code == 2
    assert "6,553,600,000,000 jobs" in result.output
    assert "huge.yaml:" in result.output


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("image", "images/\0.png", "a NUL character"),
        ("output", "{{ 'a\\x00b' }}.mp4", "holds a NUL character"),
        ("image", "a" * 5000, "image not found"),
        ("output", "c" * 300 + ".mp4", "longer than the file system allows"),
        ("dir", "b" * 5000, "is not a usable folder name"),
    ],
    ids=["nul-image", "nul-output", "long-image", "long-output", "long-dir"],
)
def test_unusable_path_is_a_clean_error(
    project: Path, where: str, value: str, message: str
) -> None:
    """A NUL byte in an image or output path, or a name too long for the OS, is exit 2 with the
    place before anything is bought; they used to escape as ValueError/OSError tracebacks (an
    over-long output name only after the video was paid for, at download)."""
    doc: dict[str, Any] = json.loads(json.dumps(BASE))
    if where == "image":
        doc["images"] = [{"path": value}]
    elif where == "output":
        doc["output"] = {"dir": "out", "path": value}
    else:
        doc["output"] = {"dir": value}
    path = project / "nul.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    for command in (["validate"], ["plan", "--json"]):
        result = CliRunner().invoke(cli, [command[0], str(path), *command[1:]])
        check(result, time.monotonic(), rss_mb(), f"{command} {value!r}")
        assert result.exit_code == 2, result.output
        assert message in result.output and "nul.yaml:" in result.output


# ------------------------------------------------------------------ a hostile server

RUN_MANIFEST = """\
version: 1
name: hostile
provider: {{endpoint: "{url}", image_base_url: "file://"}}
images:
  - path: images/garden.png
prompts:
  - id: a
    template: "A {{{{ mood }}}} scene"
matrix:
  mood: [calm, bold]
output: {{dir: out}}
limits: {{poll_interval: 0.05, create_rps: 50, request_rps: 100, job_timeout: 2,
          request_timeout: 1, download_stall_timeout: 1}}
"""
ENDPOINTS = {
    "create": "/api/open/v4/image2Video/createBySourcePrompt",
    "results": "/api/open/v4/image2Video/resultsByIds",
    "video": "/_emulator/",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["1", "http://127.0.0.1:1/x.mp4", "file:///etc/passwd", "../../m.yaml"]),
    lambda c: st.lists(c, max_size=3)
    | st.dictionaries(
        st.sampled_from(["_id", "status", "video_url", "url", "deduction_credit", "result",
                         "successList", "errorList", "data", "code", "msg", "video_duration"]),
        c, max_size=5),
    max_leaves=15,
)  # fmt: skip
bodies = (
    json_values.map(lambda v: json.dumps({"code": 1000, "msg": "OK", "data": v}))
    | json_values.map(json.dumps)
    | st.sampled_from(["", "<html>", "[" * 5000, '{"code": 1005}', '{"code": 1101, "msg": "no"}',
                       '{"code": 1006}', '{"code": 1003, "msg": "bad"}', "\xff\xfe"])
)  # fmt: skip
answers = st.tuples(
    st.sampled_from([200, 200, 200, 201, 400, 403, 404, 429, 500, 502, 503]),
    bodies,
    st.sampled_from([None, "0", "1", "-5", "1e9", "soon", "Wed, 21 Oct 2099 07:28:00 GMT"]),
    st.sampled_from(["answer", "answer", "drop"]),
)


class HostileProxy:
    """An AKOOL endpoint on port 0 that answers from a script of hostile answers per endpoint,
    and forwards everything else to a real emulator (so every run can finish)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.script: dict[str, list[tuple[int, str, str | None, str]]] = {}
        self.loop = asyncio.new_event_loop()
        self.url = ""
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self._start())
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    async def _start(self) -> None:
        self.session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        for name, prefix in ENDPOINTS.items():
            if request.path.startswith(prefix) and self.script.get(name):
                status, body, retry_after, mode = self.script[name].pop(0)
                if mode == "drop" and request.transport is not None:
                    request.transport.abort()
                    return web.Response(status=500)
                headers = {"Retry-After": retry_after} if retry_after else {}
                data = body.encode("utf-8", "surrogateescape")
                return web.Response(status=status, body=data, headers=headers)
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            data=await request.read(),
        ) as up:
            return web.Response(status=up.status, body=await up.read(), headers=up.headers)

    def close(self) -> None:
        async def stop() -> None:
            await self.session.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileProxy]:
    renders = tmp_path_factory.mktemp("renders")
    emulator = ThreadedEmulator(
        EmulatorConfig(queue_time=0.0, processing_time=0.05, fps=1, scale=0.25, cache_dir=renders)
    )
    proxy = HostileProxy(emulator.base_url)
    yield proxy
    proxy.close()
    emulator.close()


@pytest.mark.slow
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(script=st.fixed_dictionaries({name: st.lists(answers, max_size=3) for name in ENDPOINTS}))
def test_hostile_server_answers_end_cleanly(
    script: dict[str, list[Any]],
    hostile: HostileProxy,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scripted hostile answers to create, poll and download, then a sane server: `i2v run`
    exits 0-3 with no traceback, < 5 s, bounded RSS, and nothing it printed holds the key."""
    monkeypatch.setenv("AKOOL_API_KEY", KEY)
    # time, not logic: backoffs and the Retry-After cap (60 s) shrink so each run fits in 5 s
    monkeypatch.setattr(retry, "backoff", lambda attempt, base, cap: 0.01)
    monkeypatch.setattr(akool, "MAX_RETRY_AFTER", 0.3)
    folder = tmp_path_factory.mktemp("run")
    shutil.copytree(IMAGES, folder / "images")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder / "cache"))
    path = folder / "m.yaml"
    path.write_text(RUN_MANIFEST.format(url=hostile.url), encoding="utf-8")
    hostile.script = {k: list(v) for k, v in script.items()}
    baseline = rss_mb()
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["run", str(path), "--yes", "--json", "-q"])
    check(result, started, baseline, f"run {script!r}"[:3000])
    assert KEY not in result.output
    if not any(script.values()):  # the sane server behind the proxy: the run must succeed
        assert result.exit_code == 0, result.output
