"""AKOOL's HTTP API mapped to Provider, with every error classified here and only here.

Classification (design §3):
- throttled (retry and slow down): HTTP 429, code 1005
- transient (retry): code 1015, 5xx with an envelope, a connection that provably never carried
  the request (refused, DNS, TLS before the body)
- unknown outcome (never resend a create): read timeout, dropped connection mid-response,
  a 5xx without an envelope on a create
- permanent for the job: 1003 and other business codes
- fatal for the run: auth (1101, 1102, 1109, 1103, 1200), credits (1104, 1006)
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from ...errors import (
    ConfigError,
    FatalProviderError,
    JobRejectedError,
    ProviderError,
    ThrottledError,
    TransientError,
    UnknownOutcomeError,
)
from .base import Created, Result

V4 = "/api/open/v4"
V3 = "/api/open/v3"
AUTH_CODES = {1101, 1102, 1103, 1109, 1200}
CREDIT_CODES = {1104, 1006}
THROTTLE_CODES = {1005}
RETRY_CODES = {1015}
MAX_RETRY_AFTER = 60.0

AUTH_HINT = (
    "check the API key in AKOOL_API_KEY (or AKOOL_CLIENT_ID/AKOOL_CLIENT_SECRET), or use "
    "`endpoint: emulator` to try it offline"
)
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
        except (TypeError, ValueError):
            return None
        seconds = when - (time.time() if now is None else now)
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def classify(code: int, msg: str, *, http_status: int = 200) -> ProviderError:
    """The one place an AKOOL envelope code becomes an error class."""
    text = f"AKOOL code {code}: {msg}"
    if code in THROTTLE_CODES:
        return ThrottledError(text, code=code, http_status=http_status)
    if code in RETRY_CODES or http_status >= 500:
        return TransientError(text, code=code, http_status=http_status)
    if code in AUTH_CODES:
        return FatalProviderError(text, code=code, http_status=http_status, hint=AUTH_HINT)
    if code in CREDIT_CODES:
        return FatalProviderError(text, code=code, http_status=http_status, hint=CREDIT_HINT)
    return JobRejectedError(text, code=code, http_status=http_status)


class ApiKeyAuth:
    def __init__(self, api_key: str) -> None:
        self._key = api_key

    async def headers(self, client: AkoolProvider) -> dict[str, str]:
        return {"x-api-key": self._key}

    def __repr__(self) -> str:  # never show the key
        return "ApiKeyAuth(***)"


class TokenAuth:
    """The legacy flow: getToken once per run (tokens last about a year), then Bearer."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self._id, self._secret = client_id, client_secret
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
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
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
            raw = await resp.read()
            return self._envelope(resp, raw, idempotent=idempotent)

    def _envelope(
        self, resp: aiohttp.ClientResponse, raw: bytes, *, idempotent: bool
    ) -> dict[str, Any]:
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        if resp.status == 429:
            raise ThrottledError(
                "HTTP 429 Too Many Requests",
                code=1005,
                http_status=429,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        if not isinstance(doc, dict) or not isinstance(doc.get("code"), int):
            text = f"HTTP {resp.status} without an AKOOL envelope"
            if resp.status in (401, 403):
                raise FatalProviderError(text, http_status=resp.status, hint=AUTH_HINT)
            if resp.status >= 500 and not idempotent:
                raise UnknownOutcomeError(text + "; the create may have reached the API")
            if resp.status >= 500:
                raise TransientError(text, http_status=resp.status)
            raise JobRejectedError(text, http_status=resp.status)
        code = int(doc["code"])
        if code != 1000:
            err = classify(code, str(doc.get("msg", "")), http_status=resp.status)
            if isinstance(err, ThrottledError):
                err.retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            raise err
        return doc

    # ------------------------------------------------------------------ endpoints
    async def get_token(self, client_id: str, client_secret: str) -> str:
        doc = await self._call(
            "POST",
            f"{V3}/getToken",
            auth=False,
            body={"clientId": client_id, "clientSecret": client_secret},
        )
        token = doc.get("token") or (doc.get("data") or {}).get("token")
        if not token:
            raise FatalProviderError("getToken answered without a token", hint=AUTH_HINT)
        return str(token)

    async def create(self, request: Mapping[str, Any]) -> Created:
        doc = await self._call(
            "POST", f"{V4}/image2Video/createBySourcePrompt/batch", body=request, idempotent=False
        )
        data = doc.get("data") or {}
        items = (
            data.get("successList") if isinstance(data, dict) and "successList" in data else [data]
        )
        items = [i for i in items or [] if isinstance(i, dict) and i.get("_id")]
        if not items:
            errors = data.get("errorList") if isinstance(data, dict) else None
            raise JobRejectedError(f"the create returned no videos (errorList: {errors!r})")
        credits = [i.get("deduction_credit") for i in items]
        total = sum(int(c) for c in credits if isinstance(c, int | float))
        return Created(
            tuple(str(i["_id"]) for i in items),
            total if any(c is not None for c in credits) else None,
        )

    async def results(self, ids: Sequence[str]) -> list[Result]:
        doc = await self._call(
            "POST", f"{V4}/image2Video/resultsByIds", body={"_ids": ",".join(ids)}
        )
        data = doc.get("data") or {}
        rows = data.get("result") if isinstance(data, dict) else data
        out = []
        for row in rows or []:
            if not isinstance(row, dict) or "_id" not in row:
                continue
            try:
                status = int(row.get("status", 1))
            except (TypeError, ValueError):
                status = 1
            duration = row.get("video_duration")
            out.append(
                Result(
                    id=str(row["_id"]),
                    status=status,
                    video_url=row.get("video_url") or None,
                    credits=row.get("deduction_credit")
                    if isinstance(row.get("deduction_credit"), int)
                    else None,
                    duration=float(duration) if isinstance(duration, int | float) else None,
                )
            )
        return out

    async def delete(self, ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        doc = await self._call("POST", f"{V4}/image2Video/delbyids", body={"_ids": ",".join(ids)})
        data = doc.get("data") or {}
        ok = [str(i) for i in data.get("successIds") or []]
        refused = {
            str(item.get("_id")): str(item.get("msg", "refused"))
            for item in data.get("noPermissionItems") or []
            if isinstance(item, dict)
        }
        return ok, refused

    async def models(self) -> list[dict[str, Any]]:
        doc = await self._call("GET", f"{V4}/aigModel/list", params={"types[]": "1501"})
        data = doc.get("data")
        return [m for m in (data if isinstance(data, list) else []) if isinstance(m, dict)]

    async def effects(self) -> list[dict[str, Any]]:
        doc = await self._call("GET", f"{V4}/image2Video/effects")
        data = doc.get("data") or {}
        rows = data.get("result") if isinstance(data, dict) else data
        return [r for r in rows or [] if isinstance(r, dict)]

    async def credit(self) -> float:
        doc = await self._call("GET", f"{V3}/faceswap/quota/info")
        return float((doc.get("data") or {}).get("credit", 0))


def auth_from_env(env: Mapping[str, str], key_var: str, id_var: str, secret_var: str) -> Auth:
    """x-api-key if set, else the token flow; ConfigError naming the variables otherwise."""
    if env.get(key_var):
        return ApiKeyAuth(env[key_var])
    if env.get(id_var) and env.get(secret_var):
        return TokenAuth(env[id_var], env[secret_var])
    raise ConfigError(
        f"no AKOOL credentials: set {key_var} (or {id_var} and {secret_var})",
        hint="or add `endpoint: emulator` under provider: to try it offline",
    )
