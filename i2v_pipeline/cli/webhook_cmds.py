"""Webhooks on the command line: `run --webhook-listen` (its address and keys) and
`i2v webhook verify`, which says whether a captured delivery verifies and what it says.

The keys are AKOOL's clientId and clientSecret (akool-api.md §10): from the variables the
manifest names (provider.client_id_env / client_secret_env, by default AKOOL_CLIENT_ID and
AKOOL_CLIENT_SECRET), or, for the embedded emulator, the emulator's own (the ones it signs with).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from ..errors import ConfigError, I2VError, InputError, UsageError
from ..spec.campaign import Campaign
from ..spec.settings import ProviderSettings
from ..state.journal import utc_iso
from .common import json_option, print_json
from .logs import output_options

if TYPE_CHECKING:  # the HTTP stack loads only when a run has work (run_cmds imports this)
    from ..run.webhook_receiver import Rejected, WebhookKeys, WebhookSetup

MAX_FILE = 1 << 20


def parse_listen(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    """`HOST:PORT` (IPv6 in brackets) -> (host, port); a usage error (exit 2) otherwise."""
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(
            f"{value!r} is not HOST:PORT; e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:0 "
            "(port 0 takes any free port)"
        )
    return host, int(port)


def emulator_keys() -> WebhookKeys:
    """The keys the embedded emulator signs with (also `i2v emulator serve`'s defaults)."""
    from ..run.webhook_receiver import WebhookKeys
    from .embedded import embedded_config

    config = embedded_config()
    return WebhookKeys(config.client_id, config.client_secret, source="the embedded emulator")


def env_keys(provider: ProviderSettings, env: Mapping[str, str]) -> WebhookKeys:
    """The keys from the variables the manifest names; ConfigError naming them if unset."""
    from ..run.webhook_receiver import WebhookKeys

    id_var, secret_var = provider.client_id_env, provider.client_secret_env
    client_id, secret = env.get(id_var), env.get(secret_var)
    if not client_id or not secret:
        raise ConfigError(
            f"webhooks need {id_var} and {secret_var}: AKOOL signs every delivery with the "
            "client id and encrypts it with the client secret",
            hint="set both to the account's clientId and clientSecret (AKOOL dashboard, API "
            "credentials); AKOOL_API_KEY alone cannot check a webhook",
        )
    return WebhookKeys(client_id, secret, source=f"{id_var}/{secret_var}")


def webhook_setup(
    campaign: Campaign, listen: tuple[str, int], env: Mapping[str, str] | None = None
) -> WebhookSetup:
    """What `run --webhook-listen` needs, checked before anything is bought: the keys, and the
    URL the API posts to. provider.webhook_url when set; else, only for an API on this
    machine (the embedded emulator, a loopback URL), the receiver's own local URL."""
    from ..run.download import is_local_host
    from ..run.webhook_receiver import WebhookSetup

    provider = campaign.provider
    env = os.environ if env is None else env
    keys = emulator_keys() if provider.is_emulator else env_keys(provider, env)
    local = provider.is_emulator or is_local_host(urlsplit(provider.endpoint).hostname or "")
    if provider.webhook_url is None and not local:
        host, port = listen
        raise ConfigError(
            f"--webhook-listen {host}:{port} needs provider.webhook_url: AKOOL posts from the "
            "internet, so it needs the public https URL that reaches this address",
            hint="set provider.webhook_url in the manifest (a tunnel or reverse proxy to "
            f"{host}:{port}); without it, drop --webhook-listen and the run polls",
        )
    return WebhookSetup(listen[0], listen[1], keys, provider.webhook_url)


@click.group("webhook")
def webhook_group() -> None:
    """Check AKOOL webhook deliveries."""


@webhook_group.command("verify")
@click.option(
    "--body",
    "body_file",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="The delivery's JSON body as received (- reads stdin).",
)
@click.option(
    "--emulator",
    is_flag=True,
    help="Use the embedded emulator's keys instead of AKOOL_CLIENT_ID/AKOOL_CLIENT_SECRET.",
)
@click.option(
    "--max-age",
    type=click.FloatRange(min=0),
    help="Also refuse a delivery sent more than this many seconds ago (as a run would).",
)
@json_option("Print the check and the decrypted payload as JSON.")
@output_options()
def verify_cmd(body_file: str, emulator: bool, max_age: float | None, as_json: bool) -> None:
    """Verify a captured delivery's signature, decrypt it and print its payload.

    The signature (sha1 over the client id, timestamp, nonce and dataEncrypt) and the AES
    decryption use AKOOL_CLIENT_ID and AKOOL_CLIENT_SECRET. Exit 0 when it verifies, 2 when
    it does not (the message says which check failed)."""
    try:
        _verify(body_file, emulator, max_age, as_json)
    except I2VError as exc:
        if as_json:  # a script reads stdout: say it failed there too, and why
            verified = exc.message.startswith(VERIFIES_BUT)
            print_json({"ok": False, "verified": verified, "reason": exc.message})
        raise


VERIFIES_BUT = "the delivery verifies but is refused"


def _verify(body_file: str, emulator: bool, max_age: float | None, as_json: bool) -> None:
    from ..run.webhook_receiver import Rejected, age_problem, open_delivery

    keys = emulator_keys() if emulator else env_keys(ProviderSettings(), os.environ)
    raw = _read(body_file)
    try:
        delivery = open_delivery(raw, keys)
    except Rejected as exc:
        raise InputError(
            f"the delivery does not verify: {exc.reason}",
            where=body_file,
            hint=_hint(exc, keys),
        ) from None
    now = time.time()
    if max_age is not None and (problem := age_problem(delivery, now, max_age)):
        raise InputError(f"{VERIFIES_BUT}: {problem}", where=body_file)
    sent = delivery.timestamp / 1000
    if as_json:
        print_json(
            {
                "ok": True,
                "verified": True,
                "sent_at": utc_iso(sent),
                "age_seconds": round(now - sent, 3),
                "nonce": delivery.nonce,
                "payload": delivery.payload,
            }
        )
        return
    click.echo(f"verified: signature and decryption match the keys from {keys.source}")
    click.echo(f"sent {utc_iso(sent)} ({now - sent:.0f} s ago), nonce {delivery.nonce}")
    click.echo(json.dumps(delivery.payload, indent=2, ensure_ascii=False))


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read(MAX_FILE + 1)[:MAX_FILE]
    try:
        with Path(name).open("rb") as f:
            return f.read(MAX_FILE)
    except OSError as exc:
        raise UsageError(
            f"cannot read {name}: {exc.strerror or exc}",
            hint="--body takes a file holding the delivery's JSON body (or - for stdin)",
        ) from None


def _hint(exc: Rejected, keys: WebhookKeys) -> str:
    if exc.status == 401:
        return (
            f"the keys from {keys.source} are not the ones it was sent with (the signature uses "
            "the client id, the encryption the client secret), or the body was changed: save "
            "it byte for byte as received"
        )
    return (
        "the file must hold the JSON object AKOOL posts (signature, dataEncrypt, timestamp, "
        "nonce), as received"
    )
