"""AKOOL's HTTP API mapped to Provider, with every error classified here and only here.

Classification (design §3):
- throttled (retry and slow down): HTTP 429, code 1005
- transient (retry): code 1015, 5xx with an envelope, a connection that provably never carried
  the request (refused, DNS, TLS before the body)
- unknown outcome (never resend a create): read timeout, dropped connection mid-response,
  a 5xx without an envelope on a create
- permanent for the job: 1003 and other business codes
- fatal for the run: auth (1101, 1102, 1109, 1103, 1200), credits (1104, 1006)
- an answer that is not what the API documents (not JSON, too big, wrong types; see answers.py):
  unknown outcome on a create, transient on a read

Every secret this client holds is registered for redaction (errors.register_secret) before it
is sent, so a server echoing it in an error message cannot bring it to the screen or the lock.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

from ...akool_codes import AUTH_CODES, CREDIT_CODES, OK, THROTTLED, TRY_AGAIN
from ...errors import (
    ConfigError,
    FatalProviderError,
    JobRejectedError,
    ProviderError,
    ThrottledError,
    TransientError,
    UnknownOutcomeError,
    redact,
    register_secret,
)
from . import answers
from .answers import MAX_BODY, Malformed
from .base import Created, CreateRequest, Result

T = TypeVar("T")

V4 = "/api/open/v4"
V3 = "/api/open/v3"
THROTTLE_CODES = {THROTTLED}
RETRY_CODES = {TRY_AGAIN}
MAX_RETRY_AFTER = 60.0
CREATE_PATH = f"{V4}/image2Video/createBySourcePrompt/batch"
AUDIO_PATH = f"{V4}/image2Video/updateVideoAudio"

log = logging.getLogger("i2v.api")
"""One DEBUG record per API exchange: method, path, HTTP status, AKOOL code, latency, ids.
Never a key, a token or a URL's query (the CLI's -v decides whether it is shown)."""

DEFAULT_SOURCE = "AKOOL_API_KEY (or AKOOL_CLIENT_ID/AKOOL_CLIENT_SECRET)"


def auth_hint(source: str = DEFAULT_SOURCE) -> str:
    """What to check after an auth failure; source names the variables the credentials came
    from (the manifest may name others than the defaults)."""
    return f"check the credentials in {source}, or use `endpoint: emulator` to try it offline"


AUTH_HINT = auth_hint()
CREDIT_HINT = "top up credits in the AKOOL dashboard, then rerun: finished jobs are kept"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds or an HTTP date, capped at MAX_RETRY_AFTER."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = when - (time.time() if now is None else now)
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def classify(
    code: int, msg: object, *, http_status: int = 200, auth: str = AUTH_HINT
) -> ProviderError:
    """The one place an AKOOL envelope code becomes an error class (auth: the hint for auth
    codes)."""
    text = f"AKOOL code {code}: {answers.text(msg)}"
    if code in THROTTLE_CODES:
        return ThrottledError(text, code=code, http_status=http_status)
    if code in RETRY_CODES or http_status >= 500:
        return TransientError(text, code=code, http_status=http_status)
    if code in AUTH_CODES:
        return FatalProviderError(text, code=code, http_status=http_status, hint=auth)
    if code in CREDIT_CODES:
        return FatalProviderError(text, code=code, http_status=http_status, hint=CREDIT_HINT)
    return JobRejectedError(text, code=code, http_status=http_status)


class ApiKeyAuth:
    def __init__(self, api_key: str, source: str = "AKOOL_API_KEY") -> None:
        self._key = api_key
        self.source = source
        """The variable the key came from, for hints (never the key)."""
        register_secret(api_key)

    async def headers(self, client: AkoolProvider) -> dict[str, str]:
        return {"x-api-key": self._key}

    def __repr__(self) -> str:  # never show the key
        return "ApiKeyAuth(***)"


class TokenAuth:
    """The legacy flow: getToken once per run (tokens last about a year), then Bearer."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        source: str = "AKOOL_CLIENT_ID/AKOOL_CLIENT_SECRET",
    ) -> None:
        self._id, self._secret = client_id, client_secret
        self.source = source
        register_secret(client_secret)
        self._token: str | None = None
        self._lock = asyncio.Lock()

    async def headers(self, client: AkoolProvider) -> dict[str, str]:
        async with self._lock:
            if self._token is None:
                self._token = await client.get_token(self._id, self._secret)
        return {"Authorization": f"Bearer {self._token}"}

    def __repr__(self) -> str:
        return "TokenAuth(***)"


Auth = ApiKeyAuth | TokenAuth


class AkoolProvider:
    """Provider over AKOOL's HTTP API: the only code that knows its wire format (field names,
    `_ids`, numeric statuses and codes from akool_codes). Logs each exchange under `i2v.api`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        auth: Auth | None,
        *,
        timeout: float = 60.0,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.auth_hint = auth_hint(auth.source) if auth is not None else AUTH_HINT
        self.host, self.seconds = urlsplit(self.base_url).hostname or self.base_url, timeout
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(10.0, timeout))

    @asynccontextmanager
    async def _translate(self, *, idempotent: bool) -> AsyncIterator[None]:
        """aiohttp's and the OS's exceptions become ours, here and nowhere else."""
        try:
            yield
        except ProviderError:
            raise
        except aiohttp.ClientConnectorError as exc:  # refused, DNS, TLS: nothing was sent
            raise TransientError(f"cannot connect to {self.base_url}: {exc.os_error}") from None
        except aiohttp.ConnectionTimeoutError:  # no connection: the request was never sent
            connect = self.timeout.sock_connect
            raise TransientError(f"cannot connect to {self.host} within {connect:g} s") from None
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors too (and say nothing)
            silent = f"no answer from {self.host} within {self.seconds:g} s"
            if idempotent:
                raise TransientError(f"{silent} (limits.request_timeout)") from None
            raise UnknownOutcomeError(f"{silent} to a create; it may have been created") from None
        except (aiohttp.ClientError, OSError) as exc:
            what = type(exc).__name__
            if idempotent:
                raise TransientError(f"request failed: {what}: {exc}") from None
            raise UnknownOutcomeError(
                f"no answer to a create ({what}); it may have been created"
            ) from None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
        auth: bool = True,
    ) -> dict[str, Any]:
        headers = await self.auth.headers(self) if (auth and self.auth) else {}
        started, status, raw = time.monotonic(), None, None
        try:
            async with (
                self._translate(idempotent=idempotent),
                self.session.request(
                    method,
                    self.base_url + path,
                    json=body,
                    params=params,
                    headers=headers,
                    timeout=self.timeout,
                ) as resp,
            ):
                status = resp.status
                raw = await _read_capped(resp, MAX_BODY)
                return self._envelope(resp, raw, idempotent=idempotent)
        finally:
            _log_exchange(method, path, status, raw, time.monotonic() - started, body)

    def _envelope(
        self, resp: aiohttp.ClientResponse, raw: bytes | None, *, idempotent: bool
    ) -> dict[str, Any]:
        """The answer's JSON object when its code is 1000; else the classified error. raw is
        None when the body was over MAX_BODY."""
        doc = answers.parse_json(raw) if raw is not None else None
        code = answers.envelope_code(doc)
        if resp.status == 429:
            raise ThrottledError(
                "HTTP 429 Too Many Requests",
                code=THROTTLED,
                http_status=429,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        if code is None or not isinstance(doc, dict):
            what = "an answer over 4 MB" if raw is None else "no AKOOL envelope"
            text = f"HTTP {resp.status} with {what}"
            if resp.status in (401, 403):
                raise FatalProviderError(text, http_status=resp.status, hint=self.auth_hint)
            if 400 <= resp.status < 500:  # the request itself was refused, by a proxy maybe
                raise JobRejectedError(text, http_status=resp.status)
            if not idempotent:  # a 2xx or 5xx: the server may have acted on it
                raise UnknownOutcomeError(text + "; the create may have reached the API")
            raise TransientError(text, http_status=resp.status)
        if code != OK:
            err = classify(code, doc.get("msg", ""), http_status=resp.status, auth=self.auth_hint)
            if isinstance(err, ThrottledError):
                err.retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            raise err
        return doc

    async def _read(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
        auth: bool = True,
    ) -> T:
        """_call, then parse `data` from the answer; an answer parse cannot use is an unknown
        outcome for a create and transient for a read (whatever parse tripped on)."""
        doc = await self._call(
            method, path, body=body, params=params, idempotent=idempotent, auth=auth
        )
        try:
            return parse(doc.get("data"))
        except (Malformed, TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            what = f"malformed answer from {path.rsplit('/', 1)[-1]}: {answers.text(exc)}"
            if idempotent:
                raise TransientError(what) from None
            raise UnknownOutcomeError(what + "; the create may have been made") from None

    # ------------------------------------------------------------------ endpoints
    async def get_token(self, client_id: str, client_secret: str) -> str:
        register_secret(client_secret)
        doc = await self._call(
            "POST",
            f"{V3}/getToken",
            auth=False,
            body={"clientId": client_id, "clientSecret": client_secret},
        )
        token = answers.token(doc)
        if token is None:
            raise FatalProviderError(
                "getToken answered without a usable token", hint=self.auth_hint
            )
        register_secret(token)
        return token

    async def create(self, request: CreateRequest) -> Created:
        """One batch create (count = variants) from our request, in AKOOL's wire format."""
        answer = await self._read(
            "POST", CREATE_PATH, answers.created, body=wire_body(request), idempotent=False
        )
        if isinstance(answer, str):  # the server said it created nothing
            raise JobRejectedError(answer)
        if debug_shown():
            log.debug("created ids=%s", ",".join(answer.ids))
        return answer

    async def update_audio(self, pre_video_id: str, request: Mapping[str, Any]) -> Created:
        """updateVideoAudio (akool-api.md §6): a new record with its own `_id`, tracked like a
        create. Not idempotent: an answer lost in transit is an unknown outcome."""
        body = {"pre_video_id": pre_video_id, **request}
        answer = await self._read("POST", AUDIO_PATH, answers.created, body=body, idempotent=False)
        if isinstance(answer, str):  # the server said it created nothing
            raise JobRejectedError(answer)
        log.debug("audio for %s: ids=%s", pre_video_id, ",".join(answer.ids))
        return answer

    async def results(self, ids: Sequence[str]) -> list[Result]:
        """The state of ids, statuses mapped to ours; rows that cannot be trusted are left out."""
        rows = await self._read(
            "POST", f"{V4}/image2Video/resultsByIds", answers.rows, body={"_ids": ",".join(ids)}
        )
        return [r for row in rows if (r := answers.result(row)) is not None]

    async def delete(self, ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """Delete ids remotely: (deleted, {refused id: why})."""
        return await self._read(
            "POST",
            f"{V4}/image2Video/delbyids",
            lambda data: answers.deleted(data, ids),
            body={"_ids": ",".join(ids)},
        )

    async def models(self) -> list[dict[str, Any]]:
        """The image-to-video models (type 1501) with a readable name."""
        models = await self._read("GET", f"{V4}/aigModel/list", _list, params={"types[]": "1501"})
        good = [m for m in models if answers.model(m)]
        if not good:  # an empty catalog would make every model unknown
            raise TransientError("the model list has no readable model")
        return good

    async def effects(self) -> list[dict[str, Any]]:
        """The effects on offer, rows that cannot be read left out."""
        rows = await self._read("GET", f"{V4}/image2Video/effects", answers.rows)
        return [e for row in rows if (e := answers.effect(row)) is not None]

    async def credit(self) -> float:
        """The account's credit balance."""
        return await self._read("GET", f"{V3}/faceswap/quota/info", answers.credit)


def wire_body(request: CreateRequest) -> dict[str, Any]:
    """Our CreateRequest as AKOOL's batch-create body (akool-api.md §4); the canonical fields
    already carry AKOOL's names, the images and webhook get theirs here."""
    body: dict[str, Any] = dict(request.fields)
    body["image_url"] = request.image_url
    if request.last_image_url is not None:
        body["last_image_url"] = request.last_image_url
    if request.webhook_url:
        body["webhookurl"] = request.webhook_url  # lowercase, as documented (akool-api.md §13)
    return body


def _log_exchange(
    method: str,
    path: str,
    status: int | None,
    raw: bytes | None,
    seconds: float,
    body: Mapping[str, Any] | None,
) -> None:
    """The DEBUG record of one exchange. The AKOOL code is read from the body again (cheap next
    to the request, and only when DEBUG is on); ids are the `_ids` asked about, if any."""
    if not debug_shown():
        return
    code = answers.envelope_code(answers.parse_json(raw)) if raw else None
    ids = str(body.get("_ids", "")) if body else ""
    log.debug(
        "%s %s http=%s code=%s %.0f ms%s",
        method,
        path,
        status if status is not None else "-",
        code if code is not None else "-",
        seconds * 1000,
        f" ids={redact(ids)}" if ids else "",
    )


def debug_shown() -> bool:
    """Whether a DEBUG record of `i2v.api` would reach any handler. The CLI keeps the logger at
    DEBUG and filters on its handler (see cli/logs.py), so isEnabledFor alone says yes on every
    run: a record built per request, to be dropped, was a measurable share of a run's CPU."""
    if not log.isEnabledFor(logging.DEBUG):
        return False
    logger: logging.Logger | None = log
    while logger is not None:
        if any(h.level <= logging.DEBUG for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False  # logging.lastResort shows WARNING and up only


def _list(data: object) -> list[Any]:
    if not isinstance(data, list):
        raise Malformed("`data` is not a list")
    return data


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or None past limit bytes (read no further: the rest is never buffered)."""
    if resp.content_length is not None and resp.content_length > limit:
        return None
    if resp.content_length is not None and "Content-Encoding" not in resp.headers:
        return await resp.read()  # bounded by its length (nothing inflates it): one read
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            return None
    return bytes(buf)


def auth_from_env(env: Mapping[str, str], key_var: str, id_var: str, secret_var: str) -> Auth:
    """x-api-key if set, else the token flow; ConfigError naming the variables otherwise."""
    if env.get(key_var):
        return ApiKeyAuth(env[key_var], key_var)
    if env.get(id_var) and env.get(secret_var):
        return TokenAuth(env[id_var], env[secret_var], f"{id_var}/{secret_var}")
    raise ConfigError(
        f"no AKOOL credentials: set {key_var} (or {id_var} and {secret_var})",
        hint="or add `endpoint: emulator` under provider: to try it offline",
    )
