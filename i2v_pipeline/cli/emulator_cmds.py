"""`i2v emulator serve`: the AKOOL emulator as a standalone server."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import click

from ..emulator import Emulator, EmulatorConfig, Faults
from ..emulator.persist import StateBusy, StateError
from ..errors import UsageError
from .logs import output_options


def banner(base_url: str, api_key: str) -> str:
    """What serve prints on stderr: where it listens, and a manifest snippet that works as is
    (image_base_url "file://": this emulator reads local images from disk, as none remote can)."""
    return (
        f"AKOOL emulator on {base_url}\n"
        f"  api key: {api_key}  (x-api-key header)\n"
        "  in a manifest:\n"
        "    provider:\n"
        f'      endpoint: "{base_url}"\n'
        '      image_base_url: "file://"\n'
        f"  then: AKOOL_API_KEY={api_key} i2v run MANIFEST"
    )


@click.group("emulator")
def emulator_group() -> None:
    """The local AKOOL emulator."""


@emulator_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int, help="0 picks a free port.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True),
    help="YAML settings: timing, credits, throttle, faults (docs/emulator.md).",
)
@click.option("--processing-time", type=float, help="Seconds at status 2.")
@click.option("--queue-time", type=float, help="Seconds at status 1.")
@click.option(
    "--throttle-rps", type=float, help="Answer 1005 past this many API requests/s (token bucket)."
)
@click.option("--throttle-burst", type=float, help="Bucket size (default: 1 s worth of requests).")
@click.option(
    "--throttle-scope",
    type=click.Choice(["key", "account"]),
    help="One budget per key/token (default) or one for the whole account, getToken included.",
)
@click.option("--fail-share", type=float, help="Share of jobs that end in status 4.")
@click.option("--fault-5xx", type=float, help="Share of requests answered 503 (all endpoints).")
@click.option("--fault-drop", type=float, help="Share of answers dropped after processing.")
@click.option("--debug-routes", is_flag=True, help="Serve /_emulator/debug/* (request counts).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Where renders are cached.")
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False),
    help="Keep the account (jobs, credits) in FILE across restarts, SIGTERM and SIGKILL.",
)
@output_options()
def serve_cmd(
    host: str,
    port: int,
    config_file: str | None,
    processing_time: float | None,
    queue_time: float | None,
    throttle_rps: float | None,
    throttle_burst: float | None,
    throttle_scope: str | None,
    fail_share: float | None,
    fault_5xx: float | None,
    fault_drop: float | None,
    debug_routes: bool,
    cache_dir: str | None,
    state_file: str | None,
) -> None:
    """Serve the emulator until Ctrl-C. Prints its base URL and an API key."""
    try:
        config = EmulatorConfig.from_file(Path(config_file)) if config_file else EmulatorConfig()
    except (ValueError, TypeError) as exc:
        raise UsageError(f"bad emulator config: {exc}", where=config_file) from None
    changes: dict[str, object] = {
        k: v
        for k, v in {
            "processing_time": processing_time,
            "queue_time": queue_time,
            "throttle_rps": throttle_rps,
            "throttle_burst": throttle_burst,
            "throttle_scope": throttle_scope,
            "fail_share": fail_share,
            "cache_dir": Path(cache_dir) if cache_dir else None,
            "state_file": Path(state_file) if state_file else None,
        }.items()
        if v is not None
    }
    if debug_routes:
        changes["debug_routes"] = True
    if fault_5xx or fault_drop:
        changes["faults"] = {
            **config.faults,
            "*": Faults(http_5xx=fault_5xx or 0.0, drop=fault_drop or 0.0),
        }
    config = config.with_(**changes)

    async def main() -> None:
        # SIGTERM is a clean shutdown too: the state is compacted on the way out.
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with Emulator(config, host=host, port=port) as emu:
                click.echo(banner(emu.base_url, config.api_key), err=True)
                click.echo(emu.base_url, nl=True)  # stdout: the URL alone, for scripts
                async for _ in signals:
                    break

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        pass
    except StateBusy as exc:
        raise UsageError(str(exc), hint="one emulator per state file") from None
    except StateError as exc:
        raise UsageError(str(exc), hint="move the file away to start afresh") from None
    click.echo("stopped", err=True)
