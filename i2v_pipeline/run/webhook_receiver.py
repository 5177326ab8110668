"""The run's webhook receiver (`i2v run --webhook-listen`, akool-api.md §10): an aiohttp server
inside the run that takes AKOOL's signed, encrypted status POSTs.

A delivery is checked in this order: shape, signature, decryption (the signature covers only the
client id, so a body that decrypts to JSON under the client secret is what proves the sender),
age (its timestamp within `limits.webhook_max_age` of our clock, either way), replay (a
signature already accepted is refused). Each refusal is logged without secrets or the body, and
answered 4xx. A good one is applied through the executor (`Executor.pushed`, the path a poll
result takes) and answered 200 only once the journal is fsynced: a 200 stops AKOOL's retries, so
what it confirms must survive a crash.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web

from ..errors import ConfigError, register_secret
from ..webhook_crypto import decrypt, signature
from .executor import Executor
from .providers import answers
from .providers.base import Result
from .recorder import Recorder

log = logging.getLogger("i2v.webhook")

MAX_BODY = 64 << 10
"""Bytes of one delivery: AKOOL's are a few hundred; more is not a webhook."""


@dataclass(frozen=True)
class WebhookKeys:
    """What AKOOL signs and encrypts with: the account's clientId and clientSecret."""

    client_id: str
    client_secret: str = field(repr=False)

    source: str = "AKOOL_CLIENT_ID/AKOOL_CLIENT_SECRET"
    """Where they came from, for messages (never the values)."""

    def __post_init__(self) -> None:
        register_secret(self.client_secret)
        if len(self.client_secret.encode()) not in (16, 24, 32):
            raise ConfigError(
                f"the client secret from {self.source} is not 16, 24 or 32 bytes long, so it "
                "cannot be the AES key AKOOL encrypts webhooks with",
                hint="copy the clientSecret from the AKOOL dashboard (API credentials) again",
            )


@dataclass(frozen=True)
class WebhookSetup:
    """What `--webhook-listen` asks for: where to listen, the keys, the URL to hand the API."""

    host: str
    port: int
    keys: WebhookKeys
    public_url: str | None = None
    """provider.webhook_url; None: the local URL of the bound port (a local API only)."""


class Rejected(Exception):
    """A delivery refused: the HTTP status to answer and why (safe to log: no body, no key)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Delivery:
    """A delivery that verified and decrypted."""

    signature: str
    timestamp: int
    """Milliseconds since the epoch, as sent."""
    nonce: str
    payload: dict[str, Any]


def open_delivery(raw: bytes, keys: WebhookKeys) -> Delivery:
    """Check a delivery's shape and signature and decrypt it; Rejected otherwise."""
    body = answers.parse_json(raw)
    if not isinstance(body, dict):
        raise Rejected(400, "the body is not a JSON object")
    sig, data = body.get("signature"), body.get("dataEncrypt")
    ts, nonce = body.get("timestamp"), body.get("nonce")
    if not isinstance(sig, str) or not isinstance(data, str) or not data:
        raise Rejected(400, "signature or dataEncrypt missing or not a string")
    millis = _millis(ts)
    if millis is None:
        raise Rejected(400, "timestamp missing or not a number of milliseconds")
    # the doc types nonce as a string but its second example sends a number (§10)
    if not ((isinstance(nonce, str) and nonce) or answers.is_int(nonce)):
        raise Rejected(400, "nonce missing")
    assert isinstance(ts, int | str) and isinstance(nonce, int | str)
    if signature(keys.client_id, ts, nonce, data) != sig.lower():  # public inputs: no timing leak
        raise Rejected(401, "the signature does not match (forged, or another client id)")
    try:
        payload = decrypt(data, keys.client_id, keys.client_secret)
    except (ValueError, RecursionError):  # bad base64, padding, UTF-8 or JSON
        raise Rejected(401, "dataEncrypt does not decrypt with the client secret") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "the decrypted payload is not a JSON object")
    return Delivery(sig.lower(), millis, str(nonce), payload)


def _millis(ts: object) -> int | None:
    """A timestamp as sent (a number, or digits in a string) -> ms; None if it is not one."""
    if isinstance(ts, int) and answers.is_int(ts):
        n = ts
    elif isinstance(ts, str) and ts.isascii() and ts.isdigit() and len(ts) <= 16:
        n = int(ts)
    else:
        return None
    return n if 0 <= n < 1 << 53 else None


def age_problem(delivery: Delivery, now: float, max_age: float) -> str | None:
    """Why the delivery's timestamp is outside the window (None when inside)."""
    off = now - delivery.timestamp / 1000
    if off > max_age:
        return f"stale: sent {off:.0f} s ago, more than {max_age:g} s"
    if off < -max_age:
        return f"timestamp {-off:.0f} s ahead of this clock, more than {max_age:g} s"
    return None


def result_of(payload: dict[str, Any]) -> Result | None:
    """The payload as a results row would say it (None when its id or status is unusable)."""
    row = {"_id": payload.get("_id"), "status": payload.get("status")}
    return answers.result({**row, "video_url": payload.get("url")})


class ReplayGuard:
    """Signatures accepted recently. A signature covers the timestamp, the nonce and the
    ciphertext, so it names one delivery (AKOOL's 4-digit nonces alone repeat). It is kept
    twice the window: any replay later than that is refused as stale instead."""

    def __init__(self, keep: float) -> None:
        self.keep = keep
        self._seen: dict[str, float] = {}
        self._order: deque[tuple[float, str]] = deque()

    def claim(self, sig: str, now: float) -> bool:
        """True if sig is new (it is then held); False if it was seen."""
        while self._order and self._order[0][0] < now:
            _, old = self._order.popleft()
            if self._seen.get(old, now) < now:
                del self._seen[old]
        if sig in self._seen:
            return False
        self._seen[sig] = now + self.keep
        self._order.append((now + self.keep, sig))
        return True

    def release(self, sig: str) -> None:
        """Forget sig: the delivery was not applied, so AKOOL's retry must be taken."""
        self._seen.pop(sig, None)


class Outcome(enum.Enum):
    APPLIED = "applied"
    """Applied and fsynced."""
    FOREIGN = "not a job of this run"
    """No job in flight has the id (done already, or another run's): nothing to do."""
    LATER = "not tracked yet"
    """A create is on the wire and may be this id's: answer 503 so that AKOOL retries."""


Sink = Callable[[Result], Awaitable[Outcome]]


class WebhookReceiver:
    """The aiohttp app and its checks; `sink` applies a result (set once the executor exists:
    until then deliveries get 503, and AKOOL retries)."""

    def __init__(
        self,
        keys: WebhookKeys,
        *,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys, self.max_age, self.clock = keys, max_age, clock
        self.sink: Sink | None = None
        self.seen = ReplayGuard(2 * max_age)
        self.counts: dict[str, int] = {}
        """What happened to deliveries: applied, refused, ... (for the log and tests)."""
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_post("/{tail:.*}", self.handle)  # any path: a proxy may add one

    async def handle(self, request: web.Request) -> web.Response:
        """One delivery: 200 once applied durably (or not ours), 4xx refused, 503 not yet."""
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(request, Rejected(413, f"body over {MAX_BODY} bytes"))
        try:
            delivery = open_delivery(raw, self.keys)
            problem = age_problem(delivery, self.clock(), self.max_age)
            if problem:
                raise Rejected(400, problem)
            result = result_of(delivery.payload)
            if result is None:
                raise Rejected(400, "the payload has no usable _id or status")
        except Rejected as exc:
            return self._refuse(request, exc)
        if not self.seen.claim(delivery.signature, self.clock()):
            return self._refuse(request, Rejected(409, "replayed: this delivery was taken"))
        try:
            outcome = await self._apply(result)
        except BaseException:  # not applied: the sender's retry must be taken
            self.seen.release(delivery.signature)
            raise
        if outcome is Outcome.LATER:
            self.seen.release(delivery.signature)
            self._count("later")
            return web.Response(status=503, text=outcome.value, headers={"Retry-After": "1"})
        self._count(outcome.name.lower())
        log.debug("webhook %s: video %s status %d", outcome.value, result.id, result.status)
        return web.Response(text="ok")

    async def _apply(self, result: Result) -> Outcome:
        if self.sink is None:
            return Outcome.LATER
        return await self.sink(result)

    def _refuse(self, request: web.Request, exc: Rejected) -> web.Response:
        self._count("refused")
        log.warning("webhook refused (HTTP %d) from %s: %s", exc.status, request.remote, exc.reason)
        return web.Response(status=exc.status, text=exc.reason)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


def sink_for(executor: Executor, recorder: Recorder) -> Sink:
    """Results into the executor as a poll's would go, fsynced before the 200."""

    async def sink(result: Result) -> Outcome:
        if executor.pushed(result):
            await recorder.sync()
            return Outcome.APPLIED
        return Outcome.LATER if executor.creating else Outcome.FOREIGN

    return sink


class Listening:
    """A started receiver: where it listens and the URL the API should post to."""

    def __init__(self, receiver: WebhookReceiver, host: str, port: int, url: str) -> None:
        self.receiver, self.host, self.port, self.url = receiver, host, port, url


def local_url(host: str, port: int) -> str:
    """The URL a local API (the emulator) posts to for a receiver bound to host:port."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/akool-webhook"


@asynccontextmanager
async def listening(
    receiver: WebhookReceiver, host: str, port: int, public_url: str | None
) -> AsyncIterator[Listening]:
    """Serve receiver on host:port (0: any free port) for the block; the URL to hand the API is
    public_url, or the local one when it is None. ConfigError when the address cannot be bound."""
    # a handler is at most an fsync away from done: do not wait aiohttp's default 60 s for it
    runner = web.AppRunner(
        receiver.app, access_log=None, handle_signals=False, shutdown_timeout=5.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"--webhook-listen {host}:{port}: cannot listen there ({exc.strerror or exc})",
                hint="pick a free port (0 takes any) on an address of this machine",
            ) from None
        bound = runner.addresses[0][1]
        yield Listening(receiver, host, bound, public_url or local_url(host, bound))
    finally:
        with anyio.CancelScope(shield=True):  # Ctrl-C cancels the run: still close the port
            await runner.cleanup()
        if receiver.counts:
            log.info("webhooks: %s", json.dumps(receiver.counts, sort_keys=True))
