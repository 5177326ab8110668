"""Where credentials may be sent. A manifest arrives in pull requests, so it must not be able to
point a real API key at a host of its choosing: credentials go only to AKOOL's official host over
https, to loopback (the embedded emulator, `i2v emulator serve`), or to hosts the *environment*
trusts through I2V_TRUSTED_ENDPOINTS (never the manifest)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..errors import ConfigError

OFFICIAL_HOST = "openapi.akool.com"
TRUST_VAR = "I2V_TRUSTED_ENDPOINTS"
"""Comma-separated host names (or URLs, whose host is taken) that may receive credentials."""


def is_loopback(host: str) -> bool:
    """localhost or a loopback address literal (no DNS lookup: a name could resolve anywhere)."""
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def trusted_hosts(env: Mapping[str, str]) -> set[str]:
    """The hosts named in I2V_TRUSTED_ENDPOINTS, lower case; `https://h:8443/x` counts as `h`."""
    out = set()
    for entry in env.get(TRUST_VAR, "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        host = urlsplit(entry if "://" in entry else f"//{entry}").hostname
        if host:
            out.add(host.rstrip("."))
    return out


def check_credentials_may_go(endpoint: str, env: Mapping[str, str], variables: str) -> None:
    """ConfigError (exit 2, before any request) unless endpoint may receive the credentials held
    in variables (named in the message, never their values)."""
    split = urlsplit(endpoint)
    host = (split.hostname or "").rstrip(".")
    try:
        port = split.port
    except ValueError:  # a port out of range: it will not connect anyway, but say where
        port = None
    if split.scheme == "https" and host == OFFICIAL_HOST and port in (None, 443):
        return
    if is_loopback(host) or (host and host in trusted_hosts(env)):
        return
    where = f"{split.scheme}://{host or '?'}" + (f":{port}" if port else "")  # no user:password
    raise ConfigError(
        f"will not send the credentials in {variables} to {where}: it is not AKOOL's API "
        f"(https://{OFFICIAL_HOST}) nor a loopback address",
        hint=f"if you trust {host or 'this host'}, set {TRUST_VAR}={host or 'HOST'} in the "
        "environment (a manifest cannot); or use `endpoint: akool` or `endpoint: emulator`",
    )
