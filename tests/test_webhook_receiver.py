"""The run's webhook receiver: forged, replayed, stale and malformed deliveries are refused with a
4xx and a log line without secrets; a good one is applied and answered 200 only after the
journal has it on disk."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp.test_utils import TestClient, TestServer

from i2v_pipeline.errors import ConfigError
from i2v_pipeline.model import JobStatus
from i2v_pipeline.run.providers.base import Result
from i2v_pipeline.run.recorder import Recorder
from i2v_pipeline.run.schedule import PollSchedule
from i2v_pipeline.run.webhook_receiver import (
    Outcome,
    ReplayGuard,
    WebhookKeys,
    WebhookReceiver,
    local_url,
    sink_for,
)
from i2v_pipeline.state.journal import Journal, record
from i2v_pipeline.webhook_crypto import seal

pytestmark = pytest.mark.anyio

KEYS = WebhookKeys("test-client-id-0001", "abcdefghijklmnopqrstuvwx")
NOW = 1_800_000_000.0
RID = "689174694b4dbdd4ab3d28c9"


def delivery(status: int = 3, *, at: float = NOW, nonce: str = "1529", **extra: Any) -> Any:
    payload = {"_id": RID, "status": status, "type": "image2video", **extra}
    if status == 3:
        payload.setdefault("url", "https://example.com/v.mp4")
    return seal(payload, KEYS.client_id, KEYS.client_secret, int(at * 1000), nonce)


class Sink:
    """Records what reaches the executor; answers what it is told."""

    def __init__(self, outcome: Outcome = Outcome.APPLIED) -> None:
        self.got: list[Result] = []
        self.outcome = outcome

    async def __call__(self, r: Result) -> Outcome:
        self.got.append(r)
        return self.outcome


@pytest.fixture
async def client() -> AsyncIterator[Callable[[WebhookReceiver], Any]]:
    clients: list[TestClient[Any, Any]] = []

    async def make(receiver: WebhookReceiver) -> TestClient[Any, Any]:
        c = TestClient(TestServer(receiver.app))
        await c.start_server()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


def receiver(sink: Any = None, clock: Callable[[], float] = lambda: NOW) -> WebhookReceiver:
    r = WebhookReceiver(KEYS, max_age=300, clock=clock)
    r.sink = sink
    return r


async def test_good_delivery_is_applied_and_answered_200(client: Any) -> None:
    """A signed, fresh delivery reaches the sink as the result a poll would give."""
    sink = Sink()
    c = await client(receiver(sink))
    resp = await c.post("/akool-webhook", json=delivery(3))
    assert resp.status == 200
    assert sink.got == [Result(RID, JobStatus.SUCCEEDED, "https://example.com/v.mp4")]


async def test_forged_signature_is_refused_and_logged_without_secrets(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A body whose signature does not match is answered 401, never applied, logged safely."""
    sink = Sink()
    c = await client(receiver(sink))
    body = delivery(3)
    body["signature"] = "0" * 40
    with caplog.at_level(logging.WARNING, logger="i2v.webhook"):
        resp = await c.post("/", json=body)
    assert resp.status == 401 and sink.got == []
    logged = caplog.text
    assert "signature does not match" in logged
    assert KEYS.client_secret not in logged and body["dataEncrypt"] not in logged


async def test_right_signature_wrong_secret_is_refused(client: Any) -> None:
    """The signature covers only the client id: a body not encrypted with our secret is 401."""
    sink = Sink()
    c = await client(receiver(sink))
    body = seal({"_id": RID, "status": 3}, KEYS.client_id, "x" * 24, int(NOW * 1000), "7")
    resp = await c.post("/", json=body)
    assert resp.status == 401 and sink.got == []
    assert "decrypt" in await resp.text()


async def test_replayed_delivery_is_refused(client: Any) -> None:
    """The same delivery twice: the first is applied, the second answered 409 and dropped."""
    sink = Sink()
    c = await client(receiver(sink))
    body = delivery(3)
    assert (await c.post("/", json=body)).status == 200
    again = await c.post("/", json=body)
    assert again.status == 409 and len(sink.got) == 1


async def test_same_nonce_other_delivery_is_not_a_replay(client: Any) -> None:
    """AKOOL's nonces are 4 digits: a new delivery with a seen nonce is still taken."""
    sink = Sink()
    c = await client(receiver(sink))
    assert (await c.post("/", json=delivery(2, nonce="42"))).status == 200
    assert (await c.post("/", json=delivery(3, nonce="42"))).status == 200
    assert [r.status for r in sink.got] == [JobStatus.PROCESSING, JobStatus.SUCCEEDED]


@pytest.mark.parametrize("offset", [-301.0, 301.0])
async def test_stale_or_future_delivery_is_refused(client: Any, offset: float) -> None:
    """A timestamp more than max_age off our clock (either way) is answered 400, not applied."""
    sink = Sink()
    c = await client(receiver(sink))
    resp = await c.post("/", json=delivery(3, at=NOW + offset))
    assert resp.status == 400 and sink.got == []
    fresh = await c.post("/", json=delivery(3, at=NOW - 299))
    assert fresh.status == 200


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"signature": "x"}', b'{"signature":"a","dataEncrypt":"b","nonce":"1"}'],
)
async def test_malformed_body_is_400(client: Any, body: bytes) -> None:
    """Bodies that are not AKOOL's shape are answered 400 (never a 500)."""
    c = await client(receiver(Sink()))
    assert (await c.post("/", data=body)).status == 400


async def test_oversized_body_is_413(client: Any) -> None:
    """A body far larger than any delivery is refused before it is parsed."""
    c = await client(receiver(Sink()))
    assert (await c.post("/", data=b"x" * (1 << 17))).status == 413


async def test_not_yet_tracked_is_503_and_its_retry_is_taken(client: Any) -> None:
    """An id a create in flight may own is answered 503; AKOOL's retry is not a replay."""
    sink = Sink(Outcome.LATER)
    c = await client(receiver(sink))
    body = delivery(3)
    assert (await c.post("/", json=body)).status == 503
    sink.outcome = Outcome.APPLIED
    assert (await c.post("/", json=body)).status == 200


async def test_failed_apply_lets_the_retry_in(client: Any) -> None:
    """A delivery whose apply raised was not taken: the same body sent again is applied."""
    calls = 0

    async def flaky(r: Result) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return Outcome.APPLIED

    c = await client(receiver(flaky))
    body = delivery(3)
    assert (await c.post("/", json=body)).status == 500
    assert (await c.post("/", json=body)).status == 200


async def test_200_only_after_the_sink_returns(client: Any) -> None:
    """The answer waits for the apply (the journal's fsync): no 200 before it is on disk."""
    entered, gate = anyio.Event(), anyio.Event()

    async def slow(r: Result) -> Outcome:
        entered.set()
        await gate.wait()
        return Outcome.APPLIED

    c = await client(receiver(slow))
    answers: list[int] = []

    async def send() -> None:
        answers.append((await c.post("/", json=delivery(3))).status)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            await entered.wait()
            for _ in range(20):  # let the handler run on: it must still be waiting
                await anyio.sleep(0)
            assert answers == []
            gate.set()
    assert answers == [200]


class FakeExecutor:
    """What sink_for uses of the executor: pushed() records a status like _observe does."""

    def __init__(self, recorder: Recorder, known: set[str], creating: bool = False) -> None:
        self.recorder, self.known, self.creating = recorder, known, creating

    def pushed(self, r: Result) -> bool:
        if r.id not in self.known:
            return False
        self.recorder.record(record("status", "f" * 64, i=0, status=int(r.status)))
        return True


async def test_sink_fsyncs_the_journal_before_answering(tmp_path: Path) -> None:
    """sink_for applies through the executor, then fsyncs the journal, then says APPLIED."""
    journal = Journal(tmp_path / "m.lock.journal")
    recorder = Recorder(journal, {})
    order: list[str] = []
    real_sync = journal.sync

    def sync() -> int:
        order.append("sync:" + journal.path.read_text().strip().split("\n")[-1][:20])
        return real_sync()

    journal.sync = sync  # type: ignore[method-assign]
    sink = sink_for(FakeExecutor(recorder, {RID}), recorder)  # type: ignore[arg-type]
    assert await sink(Result(RID, JobStatus.SUCCEEDED, "https://x/v.mp4")) is Outcome.APPLIED
    assert order and order[0].startswith("sync:{")
    other = Result("a" * 24, JobStatus.SUCCEEDED, None)
    assert await sink(other) is Outcome.FOREIGN
    busy = sink_for(FakeExecutor(recorder, set(), creating=True), recorder)  # type: ignore[arg-type]
    assert await busy(other) is Outcome.LATER
    journal.close()


def test_replay_guard_forgets_after_its_window() -> None:
    """Signatures are held for the guard's time, then let go (stale checks take over)."""
    guard = ReplayGuard(10)
    assert guard.claim("a", 0) and not guard.claim("a", 5)
    assert guard.claim("a", 11)


def test_keys_refuse_a_secret_that_cannot_be_an_aes_key() -> None:
    """A client secret of a length AES does not take is a ConfigError naming its source."""
    with pytest.raises(ConfigError, match="16, 24 or 32 bytes"):
        WebhookKeys("id", "short", source="AKOOL_CLIENT_SECRET")


def test_local_url_of_wildcard_addresses() -> None:
    """A receiver bound to every interface is reached on loopback; IPv6 goes in brackets."""
    assert local_url("0.0.0.0", 81) == "http://127.0.0.1:81/akool-webhook"
    assert local_url("::", 81) == "http://[::1]:81/akool-webhook"


def test_schedule_with_webhooks_polls_late() -> None:
    """With webhooks a job is first polled after webhook_wait (or twice the expected time),
    and again after as long if still unfinished, instead of at its expected finish."""
    s = PollSchedule(5.0, 1.0, 5.0)
    s.expect_webhooks(60.0)
    s.add("j", 0.0)
    assert s.due["j"] == 60.0
    s.unfinished("j", 60.0)
    assert s.due["j"] == 120.0
    s.expected = 50.0
    s.add("k", 0.0)
    assert s.due["k"] == 100.0


async def test_executor_ignores_a_status_older_than_known(tmp_path: Path) -> None:
    """pushed(): deliveries may come out of order; a late `processing` never takes back a
    `succeeded`, and an id no job has is reported as such."""
    import aiohttp

    from i2v_pipeline.run.executor import Tracked
    from i2v_pipeline.spec.settings import Limits

    from .test_executor import FakeProvider, executor, items

    journal = Journal(tmp_path / "m.lock.journal")
    async with aiohttp.ClientSession() as session:
        ex = executor(FakeProvider([3]), session, journal, Limits(), tmp_path)
        spec = items(1)[0].spec
        assert spec is not None
        queued = [JobStatus.QUEUED, JobStatus.QUEUED]
        ex.tracked[spec.fingerprint] = Tracked(spec, ["a1", "b2"], list(queued), [None, None])
        assert ex.pushed(Result("a1", JobStatus.SUCCEEDED, "https://x/a.mp4"))
        assert ex.pushed(Result("a1", JobStatus.PROCESSING, None))
        t = ex.tracked[spec.fingerprint]
        assert t.status == [JobStatus.SUCCEEDED, JobStatus.QUEUED]
        assert t.urls == ["https://x/a.mp4", None]
        assert not ex.pushed(Result("c3", JobStatus.SUCCEEDED, "https://x/c.mp4"))
    journal.close()


async def test_a_poll_answer_older_than_a_webhook_does_not_undo_it(tmp_path: Path) -> None:
    """A poll sent before a variant's `succeeded` webhook came, answering `processing` after
    it, leaves the variant succeeded (with its URL) instead of waiting for the safety net."""
    import aiohttp

    from i2v_pipeline.run.executor import Tracked
    from i2v_pipeline.spec.settings import Limits

    from .test_executor import FakeProvider, executor, items

    class WebhookMidPoll(FakeProvider):
        async def results(self, ids: Any) -> list[Result]:
            answer = await super().results(ids)  # `processing` for both, as of the request
            assert ex.pushed(Result("a1", JobStatus.SUCCEEDED, "https://x/a.mp4"))
            return answer

    journal = Journal(tmp_path / "m.lock.journal")
    async with aiohttp.ClientSession() as session:
        ex = executor(WebhookMidPoll([2]), session, journal, Limits(), tmp_path)
        spec = items(1)[0].spec
        assert spec is not None
        fp = spec.fingerprint
        queued = [JobStatus.QUEUED, JobStatus.QUEUED]
        ex.tracked[fp] = Tracked(spec, ["a1", "b2"], list(queued), [None, None])
        ex.schedule.add(fp, 0.0, at_once=True)
        await ex._poll_once()
        t = ex.tracked[fp]
        assert t.status == [JobStatus.SUCCEEDED, JobStatus.PROCESSING]
        assert t.urls == ["https://x/a.mp4", None]
    journal.close()


def test_schedule_polls_jobs_of_an_earlier_run_as_without_webhooks() -> None:
    """webhook=False (a create from an earlier run, its webhook sent there): polled at once,
    then at the normal recheck cadence, not after webhook_poll_interval."""
    s = PollSchedule(5.0, 1.0, 5.0)
    s.expect_webhooks(60.0)
    s.add("old", 0.0, at_once=True, webhook=False)
    assert s.due["old"] == 0.0
    s.unfinished("old", 0.0)
    assert s.due["old"] == 1.0
    s.add("new", 0.0)
    assert s.due["new"] == 60.0


async def test_resumed_jobs_are_not_left_waiting_for_webhooks(tmp_path: Path) -> None:
    """A job resumed from the lock (created by a run that is gone) is polled at once and, still
    running, again within the normal poll interval though this run takes webhooks."""
    import aiohttp

    from i2v_pipeline.model import LockEntry
    from i2v_pipeline.spec.settings import Limits

    from .test_executor import FakeProvider, executor, items

    journal = Journal(tmp_path / "m.lock.journal")
    async with aiohttp.ClientSession() as session:
        ex = executor(FakeProvider([3]), session, journal, Limits(), tmp_path)
        ex.schedule.expect_webhooks(60.0)
        spec = items(1)[0].spec
        assert spec is not None
        fp = spec.fingerprint
        ex.entries[fp] = LockEntry(
            spec.id, fp, "submitted", "1", remote_ids=("a1",), remote_status=(1,)
        )
        ex._track_existing(spec)
        now = ex._now()
        assert ex.schedule.due[fp] <= now
        ex.schedule.unfinished(fp, now)
        assert ex.schedule.due[fp] - now <= Limits().poll_interval
    journal.close()
