"""`i2v report` without a browser: the model, escaping, missing files, Markdown and the CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.model import LockEntry
from i2v_pipeline.report.cards import AudioResult, Report, audio_of, last_run
from i2v_pipeline.report.gallery import render_html
from i2v_pipeline.report.markdown import lock_changes, md_text, render_markdown
from i2v_pipeline.state.lock import read_lock

from .conftest import KINDS
from .synth import HOSTILE_TAG, write_lock, write_manifest


def report_of(manifest: Path) -> Report:
    """The report as the CLI builds it."""
    from i2v_pipeline.cli.common import Selection, plan_campaign
    from i2v_pipeline.report.cards import build_report
    from i2v_pipeline.spec.campaign import load_campaign
    from i2v_pipeline.state.plan import PlanOptions

    campaign = load_campaign(manifest)
    planned = plan_campaign(campaign, PlanOptions(), Selection())
    return build_report(
        name="synth",
        manifest=manifest.name,
        base_dir=manifest.parent,
        prefix=planned.prefix,
        items=planned.items,
        entries=planned.entries,
    )


class Page(HTMLParser):
    """Elements and text of a page, as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def synth(workdir: Path, sample: Path, prompts: int = 4, hostile: bool = False) -> Path:
    manifest = write_manifest(workdir, prompts, hostile=hostile)
    write_lock(manifest, sample, lambda n, spec: KINDS[n % len(KINDS)])
    return manifest


def test_card_status_follows_lock_and_disk(workdir: Path, sample_mp4: Path) -> None:
    """Each state gets its status; a succeeded video whose file is gone is `missing`."""
    report = report_of(synth(workdir, sample_mp4))
    status = {c.job_id: c.status for c in report.cards}
    assert status == {
        "garden.p0": "succeeded",
        "garden.p1": "missing",
        "garden.p2": "failed",
        "garden.p3": "unknown",
        "sunrise.p0": "planned",
        "sunrise.p1": "succeeded",
        "sunrise.p2": "missing",
        "sunrise.p3": "failed",
        "tower.p0": "unknown",
        "tower.p1": "planned",
        "tower.p2": "succeeded",
        "tower.p3": "missing",
    }
    assert report.credits_spent == 8 * 20  # unknown creates record no credits
    assert report.credits_planned == 2 * 20
    failed = next(c for c in report.cards if c.job_id == "garden.p2")
    assert failed.error == "<b>moderation</b> refused"
    assert report.last_run is not None and report.last_run.seconds == 90


def test_missing_files_are_never_players(workdir: Path, sample_mp4: Path) -> None:
    """Only present files get a player; a missing one gets a 'missing' placeholder instead."""
    report = report_of(synth(workdir, sample_mp4))
    out = workdir / "out" / "report"
    page = Page(render_html(report, out))
    players = page.all("a")
    assert len(players) == 3  # the page turns each into a <video> as it nears the viewport
    for a in players:
        assert a["class"] == "player"
        assert (out / str(a["href"])).resolve().is_file()
        assert (out / str(a["data-poster"])).is_file()
    assert all((out / str(i["src"])).is_file() for i in page.all("img"))
    missing = [a for a in page.all("div") if "missing" in (a.get("class") or "").split()]
    assert len(missing) == 3


def test_markup_in_prompts_and_tags_is_text(workdir: Path, sample_mp4: Path) -> None:
    """A prompt or tag holding <script>, markup or quotes is shown as text, never parsed."""
    report = report_of(synth(workdir, sample_mp4, hostile=True))
    hostile_tags = (HOSTILE_TAG, "<script>alert(3)</script>")
    cards = [dataclasses.replace(c, tags=hostile_tags) for c in report.cards]
    report = dataclasses.replace(report, cards=cards)
    html = render_html(report, workdir / "rep", stills=False)
    page = Page(html)
    assert len(page.all("script")) == 1  # the page's own
    assert not any("onerror" in attrs for _, attrs in page.tags)
    assert not page.all("img") or all(a.get("src") != "x" for a in page.all("img"))
    text = "".join(page.text)
    assert "<script>alert('p')</script> \"quoted\" & garden" in text
    assert HOSTILE_TAG in text
    tags = [json.loads(str(a["data-tags"])) for a in page.all("article")]
    assert tags == [[HOSTILE_TAG, "<script>alert(3)</script>"]] * len(cards)


def test_last_run_is_the_last_cluster_of_job_spans() -> None:
    """Wall time of the last run: spans merged across gaps under a minute, earlier runs dropped."""

    def entry(sent: str, done: str) -> LockEntry:
        return LockEntry("j", "0" * 64, "succeeded", "a", submitted_at=sent, finished_at=done)

    entries = [
        entry("2026-01-01T10:00:00Z", "2026-01-01T10:05:00Z"),  # an earlier run
        entry("2026-01-02T09:00:00Z", "2026-01-02T09:02:00Z"),
        entry("2026-01-02T09:02:30Z", "2026-01-02T09:04:00Z"),  # 30 s later: same run
        entry("2026-01-02T09:01:00Z", "2026-01-02T09:03:00Z"),
    ]
    window = last_run(entries)
    assert window is not None
    assert (window.start, window.end, window.seconds, window.jobs) == (
        "2026-01-02T09:00:00Z",
        "2026-01-02T09:04:00Z",
        240.0,
        3,
    )
    assert last_run([LockEntry("j", "0" * 64, "unknown", "a")]) is None


def test_audio_slot_only_when_the_entry_has_audio(workdir: Path, sample_mp4: Path) -> None:
    """The audio stage's result renders when an entry carries one, and nothing is made up."""
    entry = cast(LockEntry, SimpleNamespace(audio=[{"status": "done", "file": "a.m4a"}, None]))
    assert audio_of(entry, 1) == AudioResult("done", "a.m4a", None)
    assert audio_of(entry, 2) is None
    plain = cast(LockEntry, SimpleNamespace(audio={"state": "failed", "error": "no voice"}))
    assert audio_of(plain, 3) == AudioResult("failed", None, "no voice")
    report = report_of(synth(workdir, sample_mp4))
    assert all(c.audio is None for c in report.cards)
    assert "audio:" not in render_html(report, workdir / "rep", stills=False)
    cards = [dataclasses.replace(report.cards[0], audio=AudioResult("done", "a.m4a", "fr-FR"))]
    page = Page(render_html(dataclasses.replace(report, cards=cards), workdir, stills=False))
    assert page.all("audio")[0]["src"] == "a.m4a"


def test_markdown_says_what_changed_since_the_base_lock(workdir: Path, sample_mp4: Path) -> None:
    """--base: new, re-bought (changed or retried), relocated and removed jobs are told apart."""
    manifest = synth(workdir, sample_mp4)
    now = read_lock(workdir / "synth.lock.yaml")
    by_id = {e.job_id: e for e in now.values()}
    base: dict[str, LockEntry] = {}
    for e in now.values():
        if e.job_id == "garden.p0":  # new: absent from the base
            continue
        if e.job_id == "sunrise.p1":  # retried: another attempt
            e = dataclasses.replace(e, attempt="older")
        if e.job_id == "tower.p2":  # moved since the base
            e = dataclasses.replace(e, files=(dataclasses.replace(e.files[0], path="old.mp4"),))
        if e.job_id == "garden.p2":  # changed: another fingerprint under the same id
            e = dataclasses.replace(e, fingerprint="1" * 64)
        base[e.fingerprint] = e
    gone = dataclasses.replace(by_id["garden.p1"], job_id="dropped", fingerprint="2" * 64)
    base[gone.fingerprint] = gone
    kinds = {c.job_id: c.kind for c in lock_changes(base, now).values()}
    assert kinds == {
        "garden.p0": "new",
        "sunrise.p1": "re-bought",
        "tower.p2": "relocated",
        "garden.p2": "re-bought",
        "dropped": "removed",
    }
    text = render_markdown(report_of(manifest), base)
    assert "Since the base lock: 1 new, 2 re-bought, 1 relocated, 1 removed" in text
    assert "| garden.p0 | succeeded | 20 | new |" in text
    assert "| dropped | - | - | removed |" in text
    assert "| sunrise.p0 | planned | 20 planned |  |" in text


def test_markdown_text_cannot_break_the_table() -> None:
    """Pipes, markup and newlines in a value stay inside their cell as text."""
    assert md_text("a|b <i>x</i>\n*y*") == r"a\|b &lt;i&gt;x&lt;/i&gt; \*y\*"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_cli_writes_html_and_markdown(workdir: Path, sample_mp4: Path) -> None:
    """`i2v report` writes OUTPUT_DIR/report/index.html; --format md prints or writes a file."""
    manifest = synth(workdir, sample_mp4)
    result = invoke("report", str(manifest))
    assert result.exit_code == 0, result.output
    page = workdir / "out" / "report" / "index.html"
    assert result.stdout.strip() == str(page) and page.is_file()
    assert len(list((page.parent / "posters").iterdir())) == 1  # one video, shared by 3 cards
    md = invoke("report", str(manifest), "--format", "md")
    assert md.exit_code == 0 and md.stdout.startswith("### i2v report: synth")
    base = workdir / "base.lock.yaml"
    shutil.copy(workdir / "synth.lock.yaml", base)
    out = workdir / "summary.md"
    md = invoke("report", str(manifest), "--format", "md", "--base", str(base), "-o", str(out))
    assert md.exit_code == 0, md.output
    assert "0 new, 0 re-bought, 0 relocated, 0 removed" in out.read_text()


def test_cli_user_errors_exit_2(workdir: Path, sample_mp4: Path) -> None:
    """--base without --format md, a missing manifest, an unwritable -o: clear errors, exit 2."""
    manifest = synth(workdir, sample_mp4)
    result = invoke("report", str(manifest), "--base", "x.lock.yaml")
    assert result.exit_code == 2 and "--base only applies to --format md" in result.stderr
    result = invoke("report", str(workdir / "nope.yaml"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    (workdir / "afile").write_text("")
    result = invoke("report", str(manifest), "-o", str(workdir / "afile"))
    assert result.exit_code == 2 and "cannot write the report" in result.stderr


def test_a_changed_prompt_is_reported_as_a_planned_replace(workdir: Path, sample_mp4: Path) -> None:
    """Editing a prompt after a run (a `-/+ replace` in the plan) renders, in HTML and Markdown."""
    manifest = synth(workdir, sample_mp4)
    manifest.write_text(manifest.read_text().replace("Shot 1 of", "Orbit 1 of"), encoding="utf-8")
    html = invoke("report", str(manifest), "-o", str(workdir / "gallery"))
    assert html.exit_code == 0, html.output
    md = invoke("report", str(manifest), "--format", "md")
    assert md.exit_code == 0 and "Traceback" not in md.output, md.output
    assert "garden.p1" in md.stdout


def test_report_never_overwrites_the_lock_the_manifest_or_a_video(
    workdir: Path, sample_mp4: Path
) -> None:
    """-o naming the lock, the manifest, another YAML file or a recorded video is refused."""
    manifest = synth(workdir, sample_mp4)
    lock = workdir / "synth.lock.yaml"
    before = lock.read_bytes()
    video = next((workdir / "out").rglob("*.mp4"))
    for target, what in [
        (lock, "the manifest or its lock"),
        (manifest, "the manifest or its lock"),
        (workdir / "other.yml", "a YAML file"),
        (video, "a video of this campaign"),
    ]:
        result = invoke("report", str(manifest), "--format", "md", "-o", str(target))
        assert result.exit_code == 2, result.output
        assert f"the report would overwrite {what}" in result.stderr
    assert lock.read_bytes() == before
