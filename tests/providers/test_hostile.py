"""A hostile AKOOL server (aioresponses): every answer shape ends in a classified i2v error or
sanitized values, never a traceback, a lost create id or a leaked secret."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2v_pipeline import errors
from i2v_pipeline.cli import cli
from i2v_pipeline.errors import (
    DownloadError,
    FatalProviderError,
    I2VError,
    JobRejectedError,
    ProviderError,
    TransientError,
    UnknownOutcomeError,
)
from i2v_pipeline.model import ImageRef, JobSpec, LockEntry
from i2v_pipeline.run.delivery import Delivery
from i2v_pipeline.run.download import Policy
from i2v_pipeline.run.providers.akool import AkoolProvider, ApiKeyAuth, TokenAuth
from i2v_pipeline.run.providers.base import Created, CreateRequest

from ..conftest import WriteManifest

pytestmark = pytest.mark.anyio
REQ = CreateRequest({"prompt": "p"}, "https://x/a.png")
"""A create as the executor hands it to the provider."""
BASE = "https://openapi.akool.com"
BATCH = f"{BASE}/api/open/v4/image2Video/createBySourcePrompt/batch"
RESULTS = f"{BASE}/api/open/v4/image2Video/resultsByIds"
TOKEN = f"{BASE}/api/open/v3/getToken"
MODELS = f"{BASE}/api/open/v4/aigModel/list?types[]=1501"
EFFECTS = f"{BASE}/api/open/v4/image2Video/effects"
DELETE = f"{BASE}/api/open/v4/image2Video/delbyids"
CREDIT = f"{BASE}/api/open/v3/faceswap/quota/info"
KEY = "sk-hostile-test-key-0123456789"
ID1, ID2 = "689174694b4dbdd4ab3d28c9", "689174694b4dbdd4ab3d28ca"
DEEP = "[" * 100_000 + "]" * 100_000
HUGE = '{"code": 1000, "data": {"pad": "' + "x" * (5 << 20) + '"}}'


def ok(data: object) -> str:
    return json.dumps({"code": 1000, "msg": "OK", "data": data})


@pytest.fixture(autouse=True)
def fresh_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no registered secret: what it redacts, it registered itself."""
    monkeypatch.setattr(errors, "_SECRETS", set())


@pytest.fixture
async def client() -> AsyncIterator[AkoolProvider]:
    async with aiohttp.ClientSession() as s:
        yield AkoolProvider(s, BASE, ApiKeyAuth(KEY))


# A create whose answer cannot be read may still have created (and charged) the video.
CREATE_ANSWERS = {
    "html-200": (200, "<html>ok</html>", UnknownOutcomeError),
    "empty-200": (200, "", UnknownOutcomeError),
    "code-nan": (200, '{"code": NaN, "data": {}}', UnknownOutcomeError),
    "code-infinity": (200, '{"code": Infinity}', UnknownOutcomeError),
    "code-1e999": (200, '{"code": 1e999}', UnknownOutcomeError),
    "code-1e30": (200, '{"code": 1e30}', UnknownOutcomeError),
    "code-string": (200, '{"code": "1000", "data": {"_id": "' + ID1 + '"}}', UnknownOutcomeError),
    "code-true": (200, '{"code": true, "data": {}}', UnknownOutcomeError),
    "code-negative": (200, '{"code": -1}', UnknownOutcomeError),
    "envelope-list": (200, "[1000]", UnknownOutcomeError),
    "data-list": (200, ok([{"_id": ID1}]), UnknownOutcomeError),
    "data-null": (200, ok(None), UnknownOutcomeError),
    "data-string": (200, ok("created"), UnknownOutcomeError),
    "successList-object": (200, ok({"successList": {"_id": ID1}}), UnknownOutcomeError),
    "items-without-id": (200, ok({"successList": [{"status": 1}]}), UnknownOutcomeError),
    "id-number": (200, ok({"successList": [{"_id": 689174694}]}), UnknownOutcomeError),
    "id-not-hex": (200, ok({"successList": [{"_id": "a,b;rm -rf"}]}), UnknownOutcomeError),
    "id-list": (200, ok({"_id": [ID1]}), UnknownOutcomeError),
    "deep-nesting": (200, DEEP, UnknownOutcomeError),
    "oversize": (200, HUGE, UnknownOutcomeError),
    "bad-utf8": (200, b'{"code": 1000, "data": "\xff\xfe"}', UnknownOutcomeError),
    "oversize-502": (502, HUGE, UnknownOutcomeError),
    "html-400": (400, "<html>bad request</html>", JobRejectedError),
    "empty-successList": (200, ok({"successList": [], "errorList": [{"m": 1}]}), JobRejectedError),
    "code-msg-object": (200, '{"code": 1003, "msg": {"x": [1e999]}}', JobRejectedError),
}


@pytest.mark.parametrize(
    ("status", "body", "cls"), list(CREATE_ANSWERS.values()), ids=list(CREATE_ANSWERS)
)
async def test_hostile_create_answer_is_classified(
    client: AkoolProvider, status: int, body: str | bytes, cls: type[ProviderError]
) -> None:
    """Each hostile answer to a create is exactly one classified error (unknown when it may
    have created), never a RecursionError, a TypeError or a huge buffered body."""
    with aioresponses() as m:
        m.post(BATCH, status=status, body=body)
        with pytest.raises(cls) as info:
            await client.create(REQ)
    assert type(info.value) is cls
    assert len(info.value.message) < 1000


GARBAGE_NUMBERS = {
    "string": '"5"',
    "nan": "NaN",
    "infinity": "Infinity",
    "1e999": "1e999",
    "1e30": "1e30",
    "negative": "-1",
    "true": "true",
    "fraction": "2.5",
    "list": "[5]",
    "object": '{"n": 5}',
    "null": "null",
}


@pytest.mark.parametrize("value", list(GARBAGE_NUMBERS.values()), ids=list(GARBAGE_NUMBERS))
async def test_create_ids_survive_garbage_credits(client: AkoolProvider, value: str) -> None:
    """Valid ids next to garbage deduction_credit are returned (the job is not lost); only the
    readable credits are summed."""
    body = (
        '{"code": 1000, "data": {"successList": ['
        f'{{"_id": "{ID1}", "deduction_credit": {value}, "status": "x"}},'
        f'{{"_id": "{ID2}", "deduction_credit": 5}},'
        '{"_id": 42}, "junk"]}}'
    )
    with aioresponses() as m:
        m.post(BATCH, body=body)
        created = await client.create(REQ)
    assert created.ids == (ID1, ID2)
    assert created.credits == 5


async def test_create_single_shape_with_garbage_credit_keeps_id(client: AkoolProvider) -> None:
    """The single-create shape with NaN or negative credits still yields its id."""
    with aioresponses() as m:
        m.post(
            BATCH, body='{"code": 1000, "data": {"_id": "' + ID1 + '", "deduction_credit": NaN}}'
        )
        m.post(BATCH, body=ok({"_id": ID1, "deduction_credit": -60}))
        assert await client.create(REQ) == Created((ID1,), None)
        assert await client.create(REQ) == Created((ID1,), None)


READ_ANSWERS = {
    "html-200": (200, "<html>ok</html>"),
    "empty-200": (200, ""),
    "code-string": (200, '{"code": "1000", "data": {"result": []}}'),
    "data-string": (200, ok("nothing")),
    "data-number": (200, ok(7)),
    "result-object": (200, ok({"result": {"_id": ID1}})),
    "deep-nesting": (200, DEEP),
    "oversize": (200, HUGE),
    "bad-utf8": (200, b"\xff\xfe"),
}


@pytest.mark.parametrize(("status", "body"), list(READ_ANSWERS.values()), ids=list(READ_ANSWERS))
async def test_hostile_results_answer_is_transient(
    client: AkoolProvider, status: int, body: str | bytes
) -> None:
    """An unreadable resultsByIds answer is transient (retried), never a crash."""
    with aioresponses() as m:
        m.post(RESULTS, status=status, body=body)
        with pytest.raises(TransientError):
            await client.results([ID1])


QUEUED = (1, None, None, None, None)
NOT_HTTP = "the API gave a result URL that is not http(s): "
NO_URL = "the API reported the video done but gave no result URL"
ROWS = {
    "status-7": ({"_id": ID1, "status": 7}, None),
    "status-string": ({"_id": ID1, "status": "3"}, None),
    "status-true": ({"_id": ID1, "status": True}, None),
    "status-float": ({"_id": ID1, "status": 3.0}, None),
    "no-id": ({"status": 1}, None),
    "id-number": ({"_id": 12345678, "status": 1}, None),
    "id-not-hex": ({"_id": "zzzzzzzzzz", "status": 1}, None),
    "not-an-object": ("row", None),
    "url-number": ({"_id": ID1, "status": 3, "video_url": 42},
                   (3, None, None, None, "the API gave a result URL that is not a string (int)")),
    "url-javascript": ({"_id": ID1, "status": 3, "video_url": "javascript:x"},
                       (3, None, None, None,
                        NOT_HTTP + "javascript:…")),
    "url-with-newline": ({"_id": ID1, "status": 3, "video_url": "https://a/\nb"},
                         (3, None, None, None, "the API gave a malformed http(s) result URL "
                          "(spaces, control characters or no host)")),
    "url-file": ({"_id": ID1, "status": 3, "video_url": "file:///etc/passwd?sig=s3cret"},
                 (3, None, None, None, NOT_HTTP + "file:…")),
    "url-gopher": ({"_id": ID1, "status": 3, "video_url": "gopher://h:70/_x"},
                   (3, None, None, None, NOT_HTTP + "gopher:…")),
    "url-missing": ({"_id": ID1, "status": 3},
                    (3, None, None, None, NO_URL)),
    "url-on-processing": ({"_id": ID1, "status": 2, "video_url": "file:///x"},
                          (2, None, None, None, None)),
    "credit-negative": ({"_id": ID1, "status": 1, "deduction_credit": -5}, QUEUED),
    "credit-huge": ({"_id": ID1, "status": 1, "deduction_credit": 10**30}, QUEUED),
    "credit-string": ({"_id": ID1, "status": 1, "deduction_credit": "5"}, QUEUED),
    "duration-negative": ({"_id": ID1, "status": 1, "video_duration": -1}, QUEUED),
    "duration-string": ({"_id": ID1, "status": 1, "video_duration": "5s"}, QUEUED),
    "good": (
        {"_id": ID1, "status": 3, "video_url": "https://cdn/x.mp4", "deduction_credit": 5,
         "video_duration": 5.1},
        (3, "https://cdn/x.mp4", 5, 5.1, None),
    ),
}  # fmt: skip


@pytest.mark.parametrize(("row", "expected"), list(ROWS.values()), ids=list(ROWS))
async def test_results_rows_are_sanitized(
    client: AkoolProvider, row: object, expected: tuple[Any, ...] | None
) -> None:
    """A row with a bad id or status is dropped (counted as missing); bad optional fields become
    None; `done` without a usable URL stays done, with the reason it cannot be used."""
    with aioresponses() as m:
        m.post(RESULTS, body=ok({"result": [row]}))
        rows = await client.results([ID1])
    got = [(r.status, r.video_url, r.credits, r.duration, r.url_problem) for r in rows]
    assert got == ([] if expected is None else [expected])


@pytest.mark.parametrize(
    "answer",
    [
        {"code": 1000, "token": 42},
        {"code": 1000, "token": ""},
        {"code": 1000, "token": "tok\r\nX-Evil: 1"},
        {"code": 1000, "token": ["tok"]},
        {"code": 1000, "data": ["tok"]},
        {"code": 1000, "data": "tok"},
        {"code": 1000, "token": "t" * 5000},
    ],
    ids=["number", "empty", "header-injection", "list", "data-list", "data-string", "huge"],
)
async def test_get_token_garbage_is_an_auth_failure(answer: dict[str, Any]) -> None:
    """A getToken answer without a usable token is a fatal auth error, not a crash or a
    header injected into the next request."""
    async with aiohttp.ClientSession() as s:
        client = AkoolProvider(s, BASE, TokenAuth("cid", "client-secret-1"))
        with aioresponses() as m:
            m.post(TOKEN, payload=answer)
            with pytest.raises(FatalProviderError, match="usable token"):
                await client.results([ID1])


@pytest.mark.parametrize(
    ("url", "method", "call", "data"),
    [
        (MODELS, "get", "models", {"models": []}),
        (MODELS, "get", "models", [{"value": 5}, {"value": "m", "durationList": ["5"]}]),
        (MODELS, "get", "models", [{"value": "m", "sort": 1e999}]),
        (EFFECTS, "get", "effects", 12),
        (CREDIT, "get", "credit", {"credit": "5"}),
        (CREDIT, "get", "credit", ["5"]),
        (DELETE, "post", "delete", [ID1]),
        (DELETE, "post", "delete", {"successIds": ID1}),
    ],
    ids=[
        "models-object",
        "models-all-bad",
        "models-sort-float",
        "effects-number",
        "credit-string",
        "credit-list",
        "delete-list",
        "delete-ids-string",
    ],
)
async def test_other_endpoints_garbage_is_transient(
    client: AkoolProvider, url: str, method: str, call: str, data: object
) -> None:
    """Models, effects, credit and delete answers of the wrong shape are transient errors."""
    with aioresponses() as m:
        getattr(m, method)(url, body=ok(data))
        with pytest.raises(TransientError):
            await (client.delete([ID1]) if call == "delete" else getattr(client, call)())


async def test_other_endpoints_keep_only_good_entries(client: AkoolProvider) -> None:
    """Bad models and effects are dropped, names lose terminal escapes, and a delete the answer
    does not confirm is reported refused (so prune does not forget it)."""
    good = {"value": "m1", "resolutionList": [{"value": "720p"}], "durationList": [5]}
    with aioresponses() as m:
        m.get(MODELS, body=ok([good, {"value": "m2", "resolutionList": "720p"}, 3]))
        m.get(EFFECTS, body=ok({"result": [{"effect_code": "e1", "name": "\x1b[31mred"}, {}]}))
        m.post(DELETE, body=ok({"successIds": [ID1, "ffffffffffff"], "noPermissionItems": 5}))
        m.post(DELETE, body=ok({"successIds": [ID1]}))
        m.get(CREDIT, body=ok({"credit": 12.5}))
        assert await client.models() == [good]
        assert await client.effects() == [{"effect_code": "e1", "name": "[31mred"}]
        with pytest.raises(TransientError):
            await client.delete([ID1, ID2])
        assert await client.delete([ID1, ID2]) == (
            [ID1],
            {ID2: "the API did not confirm the deletion"},
        )
        assert await client.credit() == 12.5


@pytest.mark.parametrize(
    ("url", "call"),
    [(BATCH, "create"), (RESULTS, "results")],
    ids=["create", "results"],
)
async def test_server_echoing_the_key_is_redacted(
    client: AkoolProvider, url: str, call: str
) -> None:
    """A server message that echoes the API key or a signed URL shows neither."""
    msg = f"invalid x-api-key {KEY}; see https://cdn.example/v.mp4?X-Amz-Signature=abc123"
    with aioresponses() as m:
        m.post(url, payload={"code": 1101, "msg": msg})
        with pytest.raises(FatalProviderError) as info:
            await (client.create(REQ) if call == "create" else client.results([ID1]))
    rendered = info.value.render()
    assert KEY not in rendered and "abc123" not in rendered
    assert "***" in rendered and "https://cdn.example/v.mp4?" in rendered


async def test_key_cut_by_message_truncation_is_still_redacted(client: AkoolProvider) -> None:
    """A long message whose length cap falls inside the echoed key leaks no piece of it."""
    with aioresponses() as m:
        m.post(RESULTS, payload={"code": 1003, "msg": "x" * 290 + KEY + "y" * 50})
        with pytest.raises(JobRejectedError) as info:
            await client.results([ID1])
    assert KEY[:6] not in info.value.message and len(info.value.message) < 350


async def test_bearer_token_and_client_secret_are_redacted() -> None:
    """The token flow's client secret and bearer token are redacted when a server echoes them."""
    async with aiohttp.ClientSession() as s:
        client = AkoolProvider(s, BASE, TokenAuth("cid", "client-secret-42"))
        with aioresponses() as m:
            m.post(TOKEN, payload={"code": 1000, "token": "bearer-token-xyz"})
            m.post(
                RESULTS,
                payload={"code": 1102, "msg": "Bearer bearer-token-xyz for client-secret-42"},
            )
            with pytest.raises(FatalProviderError) as info:
                await client.results([ID1])
    assert "bearer-token-xyz" not in info.value.message
    assert "client-secret-42" not in info.value.message


answers_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["_id", "status", "video_url", "deduction_credit", "result", "data",
                         "successList", "errorList", "video_duration", "code", "msg"]),
        children,
        max_size=5,
    ),
    max_leaves=20,
)  # fmt: skip
hex_ids = st.sampled_from([ID1, ID2, "zz", ""])


@st.composite
def envelopes(draw: st.DrawFn) -> object:
    """Mostly code-1000 envelopes around fuzzed data, sometimes anything at all."""
    data = draw(answers_json)
    if draw(st.booleans()):
        rows = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"_id": hex_ids},
                    optional={
                        "status": answers_json,
                        "video_url": answers_json,
                        "deduction_credit": answers_json,
                        "video_duration": answers_json,
                    },
                ),
                max_size=3,
            )
        )
        data = {"result": rows, "successList": rows}
    return draw(st.sampled_from([{"code": 1000, "data": data}, data]))  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=envelopes(), status=st.sampled_from([200, 201, 400, 404, 500, 503]))
async def test_fuzzed_answers_yield_results_or_i2v_errors(answer: object, status: int) -> None:
    """Whatever JSON comes back, create and results return valid values or raise I2VError."""
    body = json.dumps(answer, allow_nan=True)
    async with aiohttp.ClientSession() as s:
        client = AkoolProvider(s, BASE, ApiKeyAuth(KEY))
        with aioresponses() as m:
            m.post(BATCH, status=status, body=body)
            m.post(RESULTS, status=status, body=body)
            try:
                created = await client.create(REQ)
                assert created.ids and all(i in (ID1, ID2) for i in created.ids)
                assert created.credits is None or created.credits >= 0
            except I2VError:
                pass
            try:
                for r in await client.results([ID1]):
                    assert r.status in (1, 2, 3, 4) and r.id in (ID1, ID2)
                    assert r.video_url is None or isinstance(r.video_url, str)
                    assert r.credits is None or r.credits >= 0
            except I2VError:
                pass


E2E = """\
version: 1
name: hostile
provider: {endpoint: "https://openapi.akool.com", image_base_url: "https://img.example/"}
images:
  - path: images/garden.png
prompts:
  - id: a
    template: "A calm scene"
"""


def test_cli_never_prints_the_key(
    write_manifest: WriteManifest, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: a server echoing the API key in its refusal; `i2v run` (text and --json) and
    `i2v effects` show the error but never the key."""
    monkeypatch.setenv("AKOOL_API_KEY", KEY)
    manifest = write_manifest(E2E)
    echo = {"code": 1101, "msg": f"key {KEY} is not valid"}
    outputs = []
    size = str((workdir / "images" / "garden.png").stat().st_size)
    with aioresponses() as m:
        m.post(BATCH, payload=echo, repeat=True)
        m.get(EFFECTS, payload=echo, repeat=True)
        published = {"Content-Type": "image/png", "Content-Length": size}
        m.head("https://img.example/images/garden.png", headers=published, repeat=True)
        for args in (["run", str(manifest), "--yes"], ["run", str(manifest), "--yes", "--json"]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 3, result.output
            outputs.append(result.output)
        result = CliRunner().invoke(cli, ["effects", "--manifest", str(manifest)])
        assert result.exit_code == 3 and "is not valid" in result.output
        outputs.append(result.output)
    for lock in workdir.glob("*.lock*"):
        outputs.append(lock.read_text())
    assert all(KEY not in out for out in outputs)
    assert "key *** is not valid" in outputs[0]
    assert json.loads(outputs[1][: outputs[1].rindex("}") + 1])["fatal"].endswith("is not valid")


def test_error_boundary_redacts_environment_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI boundary masks secrets only the environment knows, and cuts URL queries."""
    from i2v_pipeline.cli.common import render_error

    monkeypatch.setenv("AKOOL_CLIENT_SECRET", "env-only-secret-77")
    exc = ProviderError("echo env-only-secret-77 at https://x.example/v.mp4?sig=s3cr3t&a=1 ok")
    assert "env-only-secret-77" in exc.message  # never registered: only the boundary knows it
    assert render_error(exc) == "echo *** at https://x.example/v.mp4?… ok"


async def test_fewer_ids_than_variants_fails_the_job_cleanly(tmp_path: Path) -> None:
    """A create that answered fewer ids than variants (the rest unreadable) ends in a
    DownloadError for the missing variant, not an IndexError in the task group."""
    spec = JobSpec(
        id="j",
        image=ImageRef("url", "https://x/a.png", "https://x/a.png"),
        request={"prompt": "p", "count": 2},
        output="j.mp4",
        fingerprint="0" * 64,
    )

    async def requery(rid: str) -> str | None:
        return None

    entry = LockEntry(job_id="j", fingerprint=spec.fingerprint, state="submitted", attempt="a")
    async with aiohttp.ClientSession() as session:
        delivery = Delivery(
            session=session,
            base_dir=tmp_path,
            prefix=".",
            entries={spec.fingerprint: entry},
            record=lambda rec: None,
            requery=requery,
            concurrent=1,
            policy=Policy(stall=5),
        )
        with pytest.raises(DownloadError, match="0 video ids for 2 variants"):
            await delivery.download(spec, [], [])


def test_signed_url_query_never_in_a_download_error() -> None:
    """A download error quoting a pre-signed URL keeps the URL's path but not its signature."""
    exc = DownloadError(
        "download failed: ClientResponseError: 403, "
        "url='https://cdn.example/v.mp4?X-Amz-Credential=AKIA1&X-Amz-Signature=f00d'"
    )
    assert "url='https://cdn.example/v.mp4?…'" in exc.render()
    assert "AKIA1" not in exc.render() and "f00d" not in exc.render()


def test_refusal_with_unwritable_characters_leaves_a_readable_lock(
    write_manifest: WriteManifest, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal whose message holds a lone surrogate (JSON spells one, UTF-8 cannot), line
    separators YAML breaks lines at (NEL, U+2028), a C1 control and a bidi override: the run
    records the failure and its lock reads back the same through both of the lock's readers
    (the line-by-line one, and the YAML loader a hand-edited lock goes through)."""
    import yaml

    from i2v_pipeline.state.lockread import read_lock

    monkeypatch.setenv("AKOOL_API_KEY", KEY)
    prompt = r'"A calm\u2028scene\Nwith\x9b a \u202eturn"'  # YAML escapes: U+2028, NEL, C1
    manifest = write_manifest(E2E.replace('"A calm scene"', prompt))
    refusal = '{"code": 1003, "msg": "bad \\ud800 image\\u2028x\\u0085y\\u009bz\\u202ejpg.exe"}'
    size = str((workdir / "images" / "garden.png").stat().st_size)
    with aioresponses() as m:
        m.post(BATCH, body=refusal, repeat=True)
        published = {"Content-Type": "image/png", "Content-Length": size}
        m.head("https://img.example/images/garden.png", headers=published, repeat=True)
        result = CliRunner().invoke(cli, ["run", str(manifest), "--yes"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lock = manifest.with_suffix(".lock.yaml")
    text = lock.read_text(encoding="utf-8")
    assert not any(c in text for c in "\u2028\u0085\u009b\u202e")
    (entry,) = read_lock(lock).values()
    assert entry.state == "failed" and entry.error is not None
    assert "bad" in entry.error.message and entry.error.message.endswith("jpg.exe")
    assert "\ud800" not in entry.error.message
    assert entry.request["prompt"] == "A calm\u2028scene\x85with\x9b a \u202eturn"
    (job,) = yaml.safe_load(text)["jobs"]
    assert job["error"]["message"] == entry.error.message
    assert job["request"] == entry.request
