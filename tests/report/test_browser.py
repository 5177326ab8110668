"""The HTML report in a real headless Chromium over file://: videos play with the right duration,
filters hide and show the right cards, markup stays text, no console errors, and a campaign of
2,000 videos opens and filters without freezing.

Skipped only where no Chromium is installed and CI is not set; under CI a missing browser fails.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.report.gallery import write_html

from ..conftest import IMAGES, REPO
from .browser import Chromium, find_chromium
from .conftest import KINDS
from .synth import HOSTILE_TAG, write_lock, write_manifest
from .test_report import report_of

SCREENSHOT = REPO / "docs" / "report-screenshot.png"
VISIBLE_JOBS = """Array.from(document.querySelectorAll('.card'))
    .filter(c => !c.hidden && !(c.closest('.group') || {}).hidden)
    .map(c => c.querySelector('.job').textContent)"""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture
def browser() -> Iterator[Chromium]:
    executable = find_chromium()
    if executable is None:
        if in_ci():
            pytest.fail("CI is set but no Chromium is installed: .ci/run must install `chromium`")
        pytest.skip(
            "no Chromium on PATH (chromium, chromium-browser, google-chrome): "
            "`apt-get install chromium` runs the browser tests"
        )
    b = Chromium(executable)
    yield b
    b.close()


def choose(b: Chromium, select: str, value: str) -> float:
    """Pick a value in one of the page's selects like a user; ms until the next frame."""
    return float(
        b.eval(
            f"""new Promise(done => {{
                const t = performance.now(), s = document.getElementById({select!r});
                s.value = {value!r};
                if (s.value !== {value!r}) throw new Error('no option ' + {value!r});
                s.dispatchEvent(new Event('change'));
                requestAnimationFrame(() => requestAnimationFrame(
                    () => done(performance.now() - t)));
            }})"""
        )
    )


def test_quickstart_report_plays_in_chromium(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Chromium
) -> None:
    """The quickstart's report: every video plays for 5 s, filters and grouping work, no errors."""
    shutil.copy(REPO / "manifests" / "quickstart.yaml", tmp_path)
    shutil.copytree(IMAGES, tmp_path / "images")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manifest = str(tmp_path / "quickstart.yaml")
    ran = CliRunner().invoke(cli, ["run", manifest, "--yes", "-q"])
    assert ran.exit_code == 0, ran.output
    made = CliRunner().invoke(cli, ["report", manifest])
    assert made.exit_code == 0, made.output
    page = Path(made.stdout.strip())

    browser.goto(page.as_uri())
    browser.wait_for(  # all six cards are near the viewport: their players are made at once
        "document.querySelectorAll('video').length === 6 && "
        "Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 1)",
        30,
    )
    videos = browser.eval(
        """Promise.all(Array.from(document.querySelectorAll('video')).map(async v => {
            await v.play();  // playable: it decodes and time moves
            await new Promise(r => {
                const t = () => v.currentTime > 0 ? r() : setTimeout(t, 20);
                t();
            });
            v.pause();
            return [v.duration, v.error === null, v.videoWidth > 0];
        }))"""
    )
    assert len(videos) == 6
    assert all(abs(d - 5.0) < 0.25 and ok and wide for d, ok, wide in videos), videos

    assert sorted(browser.eval(VISIBLE_JOBS)) == sorted(
        f"{i}.{p}" for i in ("garden", "sunrise", "tower") for p in ("dolly", "pan")
    )
    statuses = browser.eval(
        "Array.from(document.querySelectorAll('#f-status option'), o => o.value)"
    )
    assert statuses == ["", "succeeded"]  # only the statuses present are offered
    choose(browser, "f-status", "succeeded")
    choose(browser, "f-tag", "demo")
    assert len(browser.eval(VISIBLE_JOBS)) == 6
    choose(browser, "f-status", "")
    choose(browser, "f-group", "prompt")
    groups = browser.eval(
        "Array.from(document.querySelectorAll('.group')).map(g => [g.dataset.key, "
        "g.querySelectorAll('.card').length])"
    )
    assert groups == [["dolly", 3], ["pan", 3]]
    choose(browser, "f-group", "")
    choose(browser, "f-tag", "")
    assert browser.console_errors() == []

    browser.eval("window.scrollTo(0, 0)")
    shot = tmp_path / "report.png"
    browser.screenshot(shot)
    assert shot.stat().st_size > 10_000
    if os.environ.get("I2V_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, SCREENSHOT)


def test_filters_missing_files_and_markup_in_chromium(
    workdir: Path, sample_mp4: Path, browser: Chromium
) -> None:
    """Every tag and status filter shows exactly its cards; missing files show as missing;
    markup in a prompt or tag is text and runs nothing."""
    manifest = write_manifest(workdir, 4, hostile=True)
    write_lock(manifest, sample_mp4, lambda n, spec: KINDS[n % len(KINDS)])
    report = report_of(manifest)
    cards = [
        dataclasses.replace(c, tags=(*c.tags, HOSTILE_TAG)) if c.image.endswith("tower.png") else c
        for c in report.cards
    ]
    report = dataclasses.replace(report, cards=cards)
    page = write_html(report, workdir / "out" / "report")

    browser.goto(page.as_uri())
    for tag in ("", "day", "night", HOSTILE_TAG):
        for status in ("", "succeeded", "missing", "failed", "unknown", "planned"):
            choose(browser, "f-tag", tag)
            choose(browser, "f-status", status)
            expected = [
                c.job_id
                for c in cards
                if (not tag or tag in c.tags) and (not status or c.status == status)
            ]
            assert browser.eval(VISIBLE_JOBS) == expected, (tag, status)
    choose(browser, "f-group", "image")
    assert browser.eval("document.querySelectorAll('.group:not([hidden])').length") == 1
    # the last filters (hostile tag: tower only; planned) still apply inside groups
    assert browser.eval(VISIBLE_JOBS) == ["tower.p1"]

    missing_players = ".card[data-status=missing] :is(video, a.player)"
    assert browser.eval(f"document.querySelectorAll({missing_players!r}).length") == 0
    assert browser.eval("document.querySelectorAll('.novideo.missing').length") == 3
    options = browser.eval("Array.from(document.querySelectorAll('#f-tag option'), o => o.text)")
    assert HOSTILE_TAG in options
    prompts = browser.eval("Array.from(document.querySelectorAll('.prompt q'), q => q.textContent)")
    assert "<script>alert('p')</script> \"quoted\" & garden" in prompts
    assert browser.eval("document.scripts.length") == 1
    assert browser.eval("document.querySelectorAll('img[src=x], [onerror]').length") == 0
    assert not [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    assert browser.console_errors() == []


def test_two_thousand_videos_open_and_filter_quickly(
    workdir: Path, sample_mp4: Path, browser: Chromium
) -> None:
    """2,001 cards: the page loads, filters and regroups in well under a few seconds, and only
    the videos near the viewport load (lazily) until scrolled to."""
    manifest = write_manifest(workdir, 667)
    write_lock(manifest, sample_mp4, lambda n, spec: "failed" if n % 7 == 0 else "succeeded")
    started = time.perf_counter()
    made = CliRunner().invoke(cli, ["report", str(manifest)])
    built = time.perf_counter() - started
    assert made.exit_code == 0, made.output
    page = Path(made.stdout.strip())

    started = time.perf_counter()
    browser.goto(page.as_uri())
    wall = time.perf_counter() - started
    nav = browser.eval(
        "(e => [e.domContentLoadedEventEnd, e.loadEventEnd])"
        "(performance.getEntriesByType('navigation')[0])"
    )
    assert browser.eval("document.querySelectorAll('.card').length") == 2001
    awake = browser.eval("document.querySelectorAll('video').length")
    filter_ms = choose(browser, "f-status", "failed")
    assert len(browser.eval(VISIBLE_JOBS)) == 286
    tag_ms = choose(browser, "f-tag", "night")
    assert len(browser.eval(VISIBLE_JOBS)) == 95
    choose(browser, "f-status", "")
    choose(browser, "f-tag", "")
    group_ms = choose(browser, "f-group", "image")
    ungroup_ms = choose(browser, "f-group", "")
    browser.eval("window.scrollTo(0, document.body.scrollHeight)")
    last = "document.querySelector('.card:last-of-type video')"  # made once scrolled to
    browser.wait_for(f"{last} !== null && {last}.readyState >= 1", 30)
    asleep = "document.querySelectorAll('video').length < 100"  # those left behind went back
    browser.wait_for(asleep, 10)
    print(
        f"\n2001-video report: built in {built:.1f} s; DOMContentLoaded {nav[0]:.0f} ms, "
        f"load {nav[1]:.0f} ms (navigate wall {wall:.2f} s); {awake} videos woke at first; "
        f"status filter {filter_ms:.0f} ms, tag filter {tag_ms:.0f} ms, group by image "
        f"{group_ms:.0f} ms, ungroup {ungroup_ms:.0f} ms"
    )
    assert nav[1] < 10_000
    assert max(filter_ms, tag_ms, group_ms, ungroup_ms) < 3_000
    assert awake < 100
    assert browser.console_errors() == []
