"""The emulator's HTTP side: routes, auth, throttling, fault injection, request log, downloads.

`Emulator` is an async context manager that serves on a loopback port (0 = any free port):

    async with Emulator(EmulatorConfig()) as emu:
        emu.base_url, emu.config.api_key, emu.state.creates, emu.log
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from ..akool_codes import (
    INVALID_TOKEN,
    NO_ACCOUNT,
    NO_AUTHORIZATION,
    OK,
    PARAM_ERROR,
    STATUS_SUCCEEDED,
    THROTTLED,
    TRY_AGAIN,
)
from .account import Clock, ManualClock, State
from .api import Api, BadRequest, body_of, envelope, json_response
from .config import EmulatorConfig, Faults
from .media import Media
from .persist import Persistence
from .webhook import WebhookSender

LOG = logging.getLogger("i2v.emulator")
"""One DEBUG record per request served (`i2v emulator serve -v`); never a key or a query."""

V4 = "/api/open/v4"
V3 = "/api/open/v3"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator answered, for tests and debug routes."""

    at: float
    method: str
    path: str
    endpoint: str
    code: int | None
    http_status: int


class Emulator:
    """The AKOOL emulator as an aiohttp server: API, media, webhooks, optional persistence."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.state = State(self.config, clock)
        self.host, self.port = host, port
        self.log: list[RequestRecord] = []
        self.counts: Counter[str] = Counter()
        self.tokens: set[str] = set()
        self._buckets: dict[str, tuple[float, float]] = {}
        """Throttle token buckets: key -> (tokens left, clock time of that level)."""
        self.throttled = 0
        """Requests answered 1005 by the throttle (in /_emulator/debug/requests)."""
        self._rng = random.Random(self.config.seed)
        self._injected: Counter[str] = Counter()
        self.api = Api(self.state)
        self.media = Media(self.config)
        self.webhooks = WebhookSender(self.state)
        self._runner: web.AppRunner | None = None
        self.persist: Persistence | None = None
        self.app = self._build()

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return self.state.base_url

    async def start(self) -> None:
        """Open any state file (StateBusy/StateError first), then listen."""
        if self.config.state_file is not None:
            persist = Persistence(self.state, self.config.state_file)
            persist.open()  # StateBusy / StateError before any port is taken
            self.persist = persist
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        try:
            await site.start()
        except BaseException:
            await self.stop()  # release the port runner and the state file's lock
            raise
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.port
        self.state.base_url = f"http://{self.host}:{port}"

    async def stop(self) -> None:
        """Stop listening, then compact and close the state file."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.persist is not None:
            self.persist.close()
            self.persist = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def advance(self, seconds: float) -> None:
        """Move a ManualClock and apply every status change that became due."""
        if not isinstance(self.state.clock, ManualClock):
            raise TypeError("advance() needs the emulator to run on a ManualClock")
        self.state.clock.advance(seconds)
        self.state.advance()

    # ------------------------------------------------------------------ app
    def _build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=8 << 20)
        api = self.api
        routes: list[tuple[str, str, Handler, str]] = [
            ("POST", f"{V4}/image2Video/createBySourcePrompt", api.create, "create"),
            ("POST", f"{V4}/image2Video/createBySourcePrompt/batch", api.batch, "batch"),
            ("POST", f"{V4}/image2Video/resultsByIds", api.results, "results"),
            ("GET", f"{V4}/image2Video/effects", api.effects, "effects"),
            ("POST", f"{V4}/image2Video/updateVideoAudio", api.update_audio, "audio"),
            ("POST", f"{V4}/image2Video/delbyids", api.delete, "delete"),
            ("GET", f"{V4}/aigModel/list", api.models, "models"),
            ("POST", f"{V3}/getToken", self._token, "token"),
            ("GET", f"{V3}/faceswap/quota/info", api.credit, "credit"),
            ("GET", "/_emulator/videos/{id}.mp4", self._video, "video"),
        ]
        if self.config.debug_routes:
            routes += [
                ("GET", "/_emulator/debug/requests", self._debug_requests, "debug"),
                ("GET", "/_emulator/debug/creates", self._debug_creates, "debug"),
                ("POST", "/_emulator/debug/advance", self._debug_advance, "debug"),
            ]
        for i, (method, path, handler, name) in enumerate(routes):
            app.router.add_route(method, path, handler, name=f"{name}-r{i}")
        app.cleanup_ctx.append(self._background)
        return app

    async def _background(self, app: web.Application) -> Any:
        """Status changes are due at clock times; this loop applies them and sends webhooks."""
        tasks = [asyncio.ensure_future(self.webhooks.run())]
        if self.persist is not None:
            tasks.append(asyncio.ensure_future(self._journal(self.persist)))
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.webhooks.close()

    async def _journal(self, persist: Persistence) -> None:
        """Group commit: one fsync per `journal_sync` seconds (off the loop), never per request;
        compaction once the journal holds `journal_compact` records."""
        while True:
            await asyncio.sleep(self.config.journal_sync)
            await asyncio.to_thread(persist.sync)
            if persist.records >= self.config.journal_compact:
                persist.compact()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        endpoint = (route.name or "unknown-").split("-", 1)[0]
        self.counts[endpoint] += 1
        faults = self.config.faults_for(endpoint)
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if faults.drop_before and self._rng.random() < faults.drop_before:
            return self._drop(request)
        if self._inject(f"{endpoint}/5xx", faults, faults.http_5xx):
            busy = json_response(
                {"code": TRY_AGAIN, "msg": "Create video error, try again later"},
                TRY_AGAIN,
                status=503,
            )
            return self._record(request, endpoint, busy)
        if endpoint not in ("video", "debug", "unknown"):
            denied = None if endpoint == "token" else self._auth(request)
            if denied is None and (endpoint != "token" or self.config.throttle_scope == "account"):
                denied = self._throttle(request)
            if denied is not None:
                return self._record(request, endpoint, denied)
        try:
            response = await handler(request)
        except BadRequest as exc:
            response = envelope(exc.code, exc.msg)
        if faults.drop and endpoint != "video" and self._rng.random() < faults.drop:
            return self._drop(request)  # processed, but the client never hears the answer
        return self._record(request, endpoint, response)

    def _inject(self, kind: str, faults: Faults, share: float) -> bool:
        """Roll for a fault of one kind on one endpoint, within its `times` budget."""
        if not share or (faults.times is not None and self._injected[kind] >= faults.times):
            return False
        if self._rng.random() >= share:
            return False
        self._injected[kind] += 1
        return True

    def _record(
        self, request: web.Request, endpoint: str, response: web.StreamResponse
    ) -> web.StreamResponse:
        code = response.get("code")
        LOG.debug("%s %s code=%s http=%s", request.method, request.path, code, response.status)
        self.log.append(
            RequestRecord(
                time.time(), request.method, request.path, endpoint, code, response.status
            )
        )
        return response

    def _drop(self, request: web.Request) -> web.Response:
        LOG.debug("%s %s dropped (fault injection)", request.method, request.path)
        self.log.append(
            RequestRecord(time.time(), request.method, request.path, "dropped", None, 0)
        )
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    def _auth(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if auth:  # "Authorization will be used first and x-api-key will be discarded"
            token = auth.removeprefix("Bearer ").strip()
            if token not in self.tokens:
                return envelope(
                    INVALID_TOKEN, "Invalid authorization or The request token has expired"
                )
            return None
        key = request.headers.get("x-api-key")
        if not key:
            return envelope(NO_AUTHORIZATION, "Authorization cannot be empty")
        if not secrets.compare_digest(key, self.config.api_key):
            return envelope(NO_ACCOUNT, "account not exist")
        return None

    def _throttle(self, request: web.Request) -> web.Response | None:
        """A token bucket at `throttle_rps`, `throttle_burst` deep, per key or per account; on
        the emulator's clock, so a ManualClock test sees exactly when it refills."""
        rate = self.config.throttle_rps
        if not rate:
            return None
        key = ""
        if self.config.throttle_scope == "key":
            key = request.headers.get("Authorization") or request.headers.get("x-api-key") or ""
        burst = self.config.throttle_burst or max(rate, 1.0)
        now = self.state.clock.now()
        level, at = self._buckets.get(key, (burst, now))
        level = min(burst, level + max(0.0, now - at) * rate)
        if level < 1.0:
            self._buckets[key] = (level, now)
            self.throttled += 1
            if self.config.throttle_http_429:
                slow = json_response(
                    {"code": THROTTLED, "msg": "Frequent operation"}, THROTTLED, status=429
                )
                slow.headers["Retry-After"] = "1"
                return slow
            return envelope(THROTTLED, "Frequent operation")
        self._buckets[key] = (level - 1.0, now)
        return None

    # ------------------------------------------------------------------ non-API routes
    async def _token(self, request: web.Request) -> web.Response:
        try:
            body = await body_of(request)
        except BadRequest as exc:
            return envelope(PARAM_ERROR, exc.msg)
        if (
            body.get("clientId") != self.config.client_id
            or body.get("clientSecret") != self.config.client_secret
        ):
            return envelope(INVALID_TOKEN, "Invalid clientId or clientSecret")
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return web.json_response({"code": OK, "token": token})

    async def _video(self, request: web.Request) -> web.StreamResponse:
        jobs = self.state.find([request.match_info["id"]])
        if not jobs or jobs[0].status != STATUS_SUCCEEDED:
            return web.Response(status=404, text="Not Found")
        job = jobs[0]
        if self.state.expired(job):
            return web.Response(status=403, text="Request has expired")
        path = await self.media.video_for(job)
        faults = self.config.faults_for("video")
        if self._inject("video/truncate", faults, faults.truncate):
            data = path.read_bytes()
            return web.Response(body=data[: len(data) // 2], content_type="video/mp4")
        return web.FileResponse(path, headers={"Content-Type": "video/mp4"})

    async def _debug_requests(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"counts": dict(self.counts), "total": len(self.log), "throttled": self.throttled}
        )

    async def _debug_creates(self, request: web.Request) -> web.Response:
        rows = [
            {"image_url": i, "prompt": p, "creates": n} for (i, p), n in self.state.creates.items()
        ]
        return web.json_response({"creates": rows})

    async def _debug_advance(self, request: web.Request) -> web.Response:
        seconds = float((await request.json()).get("seconds", 0))
        try:
            self.advance(seconds)
        except TypeError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"now": self.state.clock.now()})
