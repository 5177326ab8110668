"""The manifest's `limits:`: every number finite and within bounds, located when it is not."""

from __future__ import annotations

import pytest

from i2v_pipeline.errors import ManifestError
from i2v_pipeline.spec.campaign import load_campaign
from i2v_pipeline.spec.settings import Limits

from .conftest import MINIMAL, WriteManifest


@pytest.mark.parametrize(
    ("limits", "message", "col"),
    [
        ("{job_timeout: .nan}", "limits.job_timeout must be a finite number, got nan", 23),
        ("{request_timeout: .NaN}", "limits.request_timeout must be a finite number", 27),
        ("{poll_interval: .inf}", "limits.poll_interval: inf is greater than the maximum", 25),
        ("{create_rps: .inf}", "limits.create_rps: inf is greater than the maximum", 22),
        ("{request_rps: -.inf}", "limits.request_rps: -inf is less than the minimum", 23),
        ("{poll_interval: 0.000001}", "limits.poll_interval: 1e-06 is less than the minimum", 25),
        ("{downloads: 100000}", "limits.downloads: 100000 is greater than the maximum", 21),
        ("{job_timeout: 1.0e+300}", "limits.job_timeout: 1e+300 is greater than the maximum", 23),
    ],
)
def test_limits_must_be_finite_and_sane(
    write_manifest: WriteManifest, limits: str, message: str, col: int
) -> None:
    """NaN, infinities and absurd values in limits are exit-2 errors at the value's place."""
    path = write_manifest(MINIMAL + f"limits: {limits}\n")
    with pytest.raises(ManifestError) as info:
        load_campaign(path)
    text = info.value.render()
    assert message in text
    assert f"{path}:8:{col}" in text


def test_every_limits_field_is_checked_for_nan() -> None:
    """The finite check covers every field of Limits, so keys added later are covered too."""
    for name in Limits.__dataclass_fields__:
        with pytest.raises(ManifestError, match=f"limits.{name} must be a finite number"):
            Limits.from_manifest({"limits": {name: float("nan")}}, lambda p: "m.yaml:9:9")


def test_plain_limits_are_read(write_manifest: WriteManifest) -> None:
    """Finite values within bounds are taken as given."""
    path = write_manifest(MINIMAL + "limits: {poll_interval: 0.5, job_timeout: 60, max_jobs: 9}\n")
    limits = load_campaign(path).limits
    assert (limits.poll_interval, limits.job_timeout, limits.max_jobs) == (0.5, 60, 9)


def test_download_limits_reach_the_download_policy(write_manifest: WriteManifest) -> None:
    """limits.download_timeout and download_stall_timeout bound every download of the run."""
    from i2v_pipeline.run.session import download_policy

    path = write_manifest(MINIMAL + "limits: {download_timeout: 7, download_stall_timeout: 3}\n")
    policy = download_policy(load_campaign(path), "http://127.0.0.1:1", emulator=False)
    assert (policy.deadline, policy.stall) == (7, 3)
