"""-v, -q, --no-color, I2V_LOG and NO_COLOR mean the same on every command."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner, Result

from i2v_pipeline.cli import COMMANDS, cli

from ..conftest import MINIMAL, ThreadedEmulator, WriteManifest

ANSI = "\x1b["


def invoke(*args: str, env: dict[str, str] | None = None, color: bool = False) -> Result:
    result = CliRunner().invoke(cli, list(args), env=env, color=color)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_verbose_shows_debug_records(write_manifest: WriteManifest) -> None:
    """-v prints DEBUG records of the `i2v` loggers on stderr; without it they stay hidden."""
    path = str(write_manifest())
    loud = invoke("plan", path, "-v")
    assert loud.exit_code == 0
    assert "debug i2v.cli: 0 lock entries from" in loud.stderr
    assert "debug" not in invoke("plan", path).stderr


def test_i2v_log_env_sets_the_level(write_manifest: WriteManifest) -> None:
    """I2V_LOG=debug shows debug records; -q overrides it; a bad level is a user error."""
    path = str(write_manifest())
    assert "debug i2v.cli:" in invoke("plan", path, env={"I2V_LOG": "debug"}).stderr
    assert "debug" not in invoke("plan", path, "-q", env={"I2V_LOG": "debug"}).stderr
    bad = invoke("plan", path, env={"I2V_LOG": "loud"})
    assert bad.exit_code == 2
    assert "I2V_LOG='loud' is not a log level" in bad.stderr and "Traceback" not in bad.stderr


def test_colour_off_with_no_color_or_flag(write_manifest: WriteManifest) -> None:
    """NO_COLOR (any value) and --no-color leave no ANSI escape in stdout or stderr."""
    path = str(write_manifest())
    coloured = invoke("plan", path, color=True)
    assert ANSI in coloured.stdout  # the create line is green: the check below can fail
    for result in (
        invoke("plan", path, color=True, env={"NO_COLOR": ""}),
        invoke("plan", path, "--no-color", color=True),
    ):
        assert result.exit_code == 0
        assert ANSI not in result.stdout and ANSI not in result.stderr


def test_no_color_reaches_errors(write_manifest: WriteManifest) -> None:
    """The `error:` prefix printed by the group after a failed command is uncoloured too."""
    path = str(write_manifest(MINIMAL.replace("A calm scene", "{{ nope }}")))
    assert ANSI in invoke("plan", path, color=True).stderr
    result = invoke("plan", path, "--no-color", color=True)
    assert result.exit_code == 2 and "error: " in result.stderr and ANSI not in result.stderr


GROUPS = {"emulator", "lock", "webhook"}  # their subcommands take the flags


@pytest.mark.parametrize(
    "name",
    [
        *sorted(set(COMMANDS) - GROUPS),
        "emulator serve",
        "lock merge",
        "lock install-merge-driver",
        "webhook verify",
    ],
)
def test_every_command_documents_the_output_flags(name: str) -> None:
    """Each command's --help lists -v/--verbose, -q/--quiet and --no-color."""
    text = invoke(*name.split(), "--help").stdout
    assert "-v, --verbose" in text and "-q, --quiet" in text and "--no-color" in text


def test_quiet_silences_run_progress(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """`run -q` prints no progress or summary; the same run without -q does."""
    text = MINIMAL + f'provider: {{endpoint: "{emulator.base_url}", image_base_url: "file://"}}\n'
    path = str(write_manifest(text + "limits: {poll_interval: 0.05}\n"))
    quiet = invoke("run", path, "--yes", "-q")
    assert quiet.exit_code == 0, quiet.stderr
    assert quiet.stderr == ""
    again = invoke("run", path, "--yes")
    assert again.exit_code == 0 and "Nothing to do: 1 job fresh" in again.stderr


def test_log_records_never_show_secrets(
    write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DEBUG record carrying a registered secret or a signed URL prints them masked."""
    import logging

    from i2v_pipeline import errors
    from i2v_pipeline.cli import common

    monkeypatch.setattr(errors, "_SECRETS", set())
    errors.register_secret("tok-123456789")
    real = common.make_plan

    def noisy(*args: Any, **kwargs: Any) -> Any:
        logging.getLogger("i2v.api").debug("auth tok-123456789 got https://cdn.x/v.mp4?sig=abc")
        return real(*args, **kwargs)

    monkeypatch.setattr(common, "make_plan", noisy)
    err = invoke("plan", str(write_manifest()), "-v").stderr
    assert "debug i2v.api: auth *** got https://cdn.x/v.mp4?…" in err
    assert "tok-123456789" not in err and "sig=abc" not in err
