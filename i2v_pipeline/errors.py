"""The error tree of i2v. Every error says what went wrong, where, and what to do next.

::

    I2VError                      exit 2 unless noted; .hint says what to do
    ├── UsageError                bad flags or arguments
    ├── InputError                a user's file is wrong; .where = "file:line:col" or "job ID"
    │   ├── ManifestError         YAML syntax, schema, unknown keys, images, globs
    │   ├── TemplateError         Jinja syntax, undefined variables, sandbox escapes
    │   ├── CatalogError          model, resolution, duration, count, last frame, audio
    │   └── LockError             a corrupt or foreign lockfile or journal
    ├── RunLockedError            another run holds the manifest
    ├── ConfigError               credentials or endpoint missing
    ├── ProviderError             something the API said or did      (see classify in providers)
    │   ├── TransientError        retry: 5xx, 1015, connection refused before the body was sent
    │   │   └── ThrottledError    retry and slow down: HTTP 429, code 1005; .retry_after
    │   ├── UnknownOutcomeError   the request may have reached the server: never resend a create
    │   ├── JobRejectedError      permanent for one job: 1003, status 4; the run goes on
    │   └── FatalProviderError    exit 3: auth, banned, out of credits; stop submitting
    ├── DownloadError             a result could not be fetched or failed verification
    │   ├── ExpiredResultError    403/404 on the result URL: re-query once
    │   └── TransientDownloadError 5xx, dropped/truncated body, undecodable file: retry in-run
    ├── StoreError                exit 1: the shared video store failed (unreachable, denied)
    │   ├── StoreMissingError     the store has no object for a recorded sha256
    │   └── StoreIntegrityError   the store's object does not hash to its key: refused
    └── Interrupted               exit 130: Ctrl-C
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Every configured secret (API key, client secret, bearer token, webhook secret) is registered
# here by whoever holds it, so that no error message built afterwards can carry it: a hostile or
# careless server may echo a request's headers or body back in its error text.
_SECRETS: set[str] = set()
MIN_SECRET = 6  # shorter values would redact ordinary words; no real credential is this short
REDACTED = "***"
# A URL's query string (signatures of pre-signed result URLs, tokens) never goes into a message.
_URL_QUERY = re.compile(r"((?:https?|wss?|file)://[^\s?#'\"<>]*)\?[^\s#'\"<>]*", re.IGNORECASE)


def register_secret(value: str | None) -> None:
    """Never show value in an error message from now on (whole process)."""
    if value and len(value) >= MIN_SECRET:
        _SECRETS.add(value)


def secrets(extra: Iterable[str] = ()) -> list[str]:
    """Every registered secret and those of extra long enough to be one, longest first (a
    secret inside another is masked after it)."""
    return sorted({*_SECRETS, *(e for e in extra if len(e) >= MIN_SECRET)}, key=len)[::-1]


def redact(text: str, extra: Iterable[str] = (), *, urls: bool = True) -> str:
    """text with every registered secret (and extra ones) masked and, if urls, URL queries cut."""
    for secret in secrets(extra):
        text = text.replace(secret, REDACTED)
    return _URL_QUERY.sub(r"\1?…", text) if urls else text


_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@")


def mask_userinfo(text: str) -> str:
    """text with every URL's `user:password@` masked (an endpoint URL from the environment may
    carry one) and registered secrets redacted."""
    return redact(_USERINFO.sub(r"\1***@", text))


def utf8_damage(data: bytes) -> tuple[int, int, int] | None:
    """Where data stops being UTF-8: (byte offset, line, column), 1-based line and column in
    characters; None if it all decodes. For messages that point at the damaged spot."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        col = len(data[start : exc.start].decode("utf-8", "replace")) + 1
        return exc.start, data.count(b"\n", 0, exc.start) + 1, col
    return None


class I2VError(Exception):
    """Base of every error i2v raises on purpose."""

    exit_code = 2
    default_hint = ""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = redact(hint) if hint is not None else self.default_hint

    def render(self) -> str:
        """The one-paragraph form the CLI prints: where: what. hint."""
        head = f"{self.where}: {self.message}" if self.where else self.message
        return f"{head}\n  hint: {self.hint}" if self.hint else head


class UsageError(I2VError):
    """Bad flags or arguments."""

    default_hint = "see `i2v --help`"


class InputError(I2VError):
    """A user's file is wrong; `where` points into it (file:line:col or job id)."""

    pass


class ManifestError(InputError):
    """YAML syntax, schema, unknown keys, images or globs of a manifest."""

    default_hint = "see docs/manifest.md for the manifest format"


class TemplateError(InputError):
    """A Jinja template that does not parse, names an undefined variable or breaks a bound."""

    default_hint = "templates are Jinja; variables come from vars, image.vars and the matrix"


class CatalogError(InputError):
    """A request the model catalog rules out (model, resolution, duration, count, ...)."""

    default_hint = "`i2v models` lists each model's resolutions, durations and limits"


class LockError(InputError):
    """A corrupt or foreign lockfile or journal: never guessed around, the lock records money."""

    pass


class RunLockedError(I2VError):
    """Another i2v process holds this manifest's run lock."""

    pass


class ConfigError(I2VError):
    """Credentials or endpoint missing or unusable for the run asked for."""

    pass


class ProviderError(I2VError):
    """Something the API answered (or failed to answer). code is AKOOL's envelope code if any."""

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.http_status = http_status


class TransientError(ProviderError):
    """Worth a retry: a 5xx, code 1015, or a connection refused before the body left."""

    pass


class ThrottledError(TransientError):
    """Retry and slow down (HTTP 429, code 1005); retry_after is the server's hint."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after = retry_after


class UnknownOutcomeError(ProviderError):
    """The request may have reached the server: a create is never resent blindly."""

    default_hint = (
        "the request may have created (and charged) a video; it is recorded as unknown. "
        "Check the AKOOL dashboard, then rerun with --resubmit-unknown if it was not created"
    )


class JobRejectedError(ProviderError):
    """Permanent for one job (code 1003, status 4); the run goes on with the others."""

    pass


class FatalProviderError(ProviderError):
    """Auth, ban or credits: stop submitting (exit 3)."""

    exit_code = 3


class DownloadError(I2VError):
    """A result could not be fetched or failed verification (exit 1)."""

    exit_code = 1


class ExpiredResultError(DownloadError):
    """403/404 on a result URL: the URL is re-queried once."""

    pass


class TransientDownloadError(DownloadError):
    """Worth another try in the same run: a 5xx, a dropped or truncated body, a file that does
    not decode (a bad transfer, most likely)."""


class StoreError(I2VError):
    """The shared video store (manifest `store:`) could not be read or written (exit 1)."""

    exit_code = 1


class StoreMissingError(StoreError):
    """The store holds no object under a recorded video's sha256."""


class StoreIntegrityError(StoreError):
    """An object in the store does not hash to its key: it is refused, never written locally."""


class StoreUnreachableError(StoreError):
    """The store's server cannot be reached: a configuration or network problem (exit 2)."""

    exit_code = 2


class Interrupted(I2VError):
    """Ctrl-C or SIGTERM stopped the run; the lock holds everything so far (exit 130)."""

    exit_code = 130
