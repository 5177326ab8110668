"""Pre-flight for `i2v run`: everything that could fail after a create (and so waste the credits
it cost) is checked before the first one, and spending on a real endpoint needs consent.

`problems` is pure apart from reading the file system (stat, realpath, sibling lockfiles, free
space through the injected `free_bytes`); it returns every problem at once, so one run of the
command shows all that needs fixing. `require` turns them into one exit-2 error. `confirm_spend`
asks through the CLI's terminal question, or requires --yes or a covering max_credits off one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import I2VError, InputError, LockError, UsageError
from ..model import Action, LockEntry, PlanItem
from ..perf import gc_paused
from ..spec.campaign import Campaign
from ..spec.outputs import protected_name
from ..state.lock import read_lock
from ..text import plural

MAX_SHOWN = 20
"""Problems listed in the message; a broken template can produce one per job."""

SHORT_SIDE = {"480p": 480, "540p": 540, "720p": 720, "1080p": 1080, "2k": 1440, "4k": 2160}
BYTES_PER_PIXEL_SECOND = 1.0
"""Generous on purpose, ~7 Mbit/s at 720p 16:9: better to refuse a run that would have fit than
to buy videos that then cannot be written."""

WRITES = (
    Action.CREATE,
    Action.REPLACE,
    Action.RETRY,
    Action.RESUME,
    Action.DOWNLOAD,
    Action.STORE,
    Action.RELOCATE,
    Action.AUDIO,
)


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


def video_bytes(request: Mapping[str, Any]) -> int:
    """A generous size estimate for one create's videos (all variants): frame area x duration."""
    short = SHORT_SIDE.get(str(request.get("resolution") or "720p"), 2160)
    seconds = float(request.get("video_length", 5))
    per_video = short * short * 16 / 9 * seconds * BYTES_PER_PIXEL_SECOND
    return int(per_video) * int(request.get("count", 1))


Files = dict[str, list[tuple[str, str]]]
"""Planned files by folder (relative to the manifest's folder, "" for itself): [(name, job id)].
Checks run once per folder, not per file: 100,000 outputs share a few hundred folders."""


def problems(
    campaign: Campaign,
    items: Iterable[PlanItem],
    prefix: str,
    entries: Mapping[str, LockEntry],
    free_bytes: Callable[[Path], int] | None = None,
) -> list[str]:
    """Every reason the planned writes would fail or do harm, as one line each. entries is the
    lock state (what files the lock owns); free_bytes tells the free space of a folder
    (shutil.disk_usage by default)."""
    # the audio stage writes files too: its outputs get the very same checks as videos'
    writes = [i for i in items if i.action in WRITES and _outputs(i)]
    folder = _existing_ancestor(campaign.output_dir)
    out = _folder_problems(campaign.output_dir, folder)
    if out or folder is None:
        return out  # everything below would only repeat it
    with gc_paused():
        files = _planned_files(writes, prefix)
    out += _path_problems(campaign.manifest.base_dir, campaign.output_dir, files)
    out += _clash_problems(campaign, files)
    out += _overwrite_problems(campaign, writes, files, entries, prefix)
    out += _space_problems(writes, folder, free_bytes or disk_free)
    return out


def _outputs(item: PlanItem) -> tuple[str, ...]:
    """The files an item writes, relative to the output folder: a video job's output paths, or
    an audio item's `update_audio.output` (both normalised by expand: `a/b.mp4`, no `..`)."""
    if item.audio is not None:
        return (item.audio.output,)
    return tuple(item.spec.output_paths()) if item.spec is not None else ()


def _planned_files(writes: Iterable[PlanItem], prefix: str) -> Files:
    files: Files = {}
    for item in writes:
        for path in _outputs(item):
            parent, _, name = (path if prefix == "." else f"{prefix}/{path}").rpartition("/")
            files.setdefault(parent, []).append((name, item.job_id))
    return files


def require(
    campaign: Campaign,
    items: Sequence[PlanItem],
    prefix: str,
    entries: Mapping[str, LockEntry],
) -> None:
    """Raise one exit-2 error listing every pre-flight problem; nothing has been sent yet."""
    found = problems(campaign, items, prefix, entries)
    if not found:
        return
    shown = [f"  - {p}" for p in found[:MAX_SHOWN]]
    if len(found) > MAX_SHOWN:
        shown.append(f"  … and {len(found) - MAX_SHOWN} more")
    raise InputError(
        f"pre-flight found {plural(len(found), 'problem')}; nothing was sent:\n" + "\n".join(shown),
        where=str(campaign.manifest.path),
        hint="fix these (output.dir, output.path, free space), then run again",
    )


def _existing_ancestor(path: Path) -> Path | None:
    """path itself or its nearest ancestor that exists (the run creates the rest)."""
    for p in (path, *path.parents):
        if os.path.lexists(p):
            return p
    return None


def _folder_problems(output_dir: Path, existing: Path | None) -> list[str]:
    if existing is None:
        return [f"no part of the output folder {output_dir} exists"]
    if not existing.is_dir():
        return [f"{existing} is not a folder, but the output folder {output_dir} must be one"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"cannot write in {existing} (permissions), so not in {output_dir}"]
    return []


def _path_problems(base: Path, output_dir: Path, files: Files) -> list[str]:
    """Each planned file and its folders: inside the output folder once symlinks are followed
    (and the output folder inside the manifest's), folders where folders are needed, writable
    where they exist."""
    out: list[str] = []
    reported: set[Path] = set()
    bounds = (output_dir, Path(os.path.realpath(output_dir)), base)
    for parent, names in files.items():
        wrong = _dir_problems(bounds, parent, names[0][1], reported)
        out += wrong
        folder = os.path.join(base, parent)
        if wrong or not os.path.isdir(folder):
            continue  # nothing is inside a folder the run will create
        present = set(os.listdir(folder))
        for name, job_id in names:
            if name not in present:
                continue
            full = os.path.join(folder, name)
            real = os.path.realpath(full)
            rel = f"{parent}/{name}" if parent else name
            if not Path(real).is_relative_to(bounds[1]):
                out.append(f"job {job_id}: {rel} is a symlink to {real}, outside the output folder")
            elif os.path.isdir(full):
                out.append(f"job {job_id}: {rel} is a folder, but the job writes a file there")
    return out


def _dir_problems(
    bounds: tuple[Path, Path, Path], parent: str, job_id: str, reported: set[Path]
) -> list[str]:
    """The first wrong folder on the way from the manifest's folder to parent, once per folder.
    Up to the output folder each must stay in the manifest's folder; below it, in the output
    folder (a link there pointing elsewhere in the project could overwrite its files)."""
    output_dir, out_real, base = bounds
    walked = base
    problem = ""
    for part in Path(parent).parts:
        walked = walked / part
        if not os.path.lexists(walked):
            return []  # the rest will be created, as real folders
        real = Path(os.path.realpath(walked))
        above = output_dir.is_relative_to(walked)
        if not real.is_relative_to(base if above else out_real):
            where = "the manifest's folder" if above else "the output folder"
            problem = f"{walked} is a symlink to {real}, outside {where}"
        elif not real.is_dir():
            problem = f"{walked} is a file, but the job writes into it as a folder"
        if problem:
            break
    else:
        if not os.access(walked, os.W_OK | os.X_OK):
            problem = f"cannot write in {walked} (permissions)"
    if not problem or walked in reported:
        return []
    reported.add(walked)
    return [f"job {job_id}: {problem}"]


def _clash_problems(campaign: Campaign, files: Files) -> list[str]:
    """Outputs that would overwrite this manifest's own files, another manifest's lock or the
    videos another manifest in the same folder has recorded (compared on real paths)."""
    base = campaign.manifest.base_dir
    real = _Resolver(base)
    taken: dict[str, dict[str, str]] = {}  # real folder -> name -> what it is

    def take(rel: str, what: str) -> None:
        folder, name = real(rel)
        taken.setdefault(folder, {})[name] = what

    lock = campaign.lock_path.name
    for name in (campaign.manifest.path.name, lock, f"{lock}.journal", f"{lock}.run"):
        take(name, f"{name} (this manifest's own file)")
    for other in sorted(base.glob("*.lock.yaml")):
        if other.name == lock:
            continue
        take(other.name, f"{other.name} (another manifest's lockfile)")
        try:
            entries = read_lock(other)
        except LockError:
            continue  # not ours to judge; `i2v validate` on that manifest reports it
        for e in entries.values():
            for f in e.files:
                if f is not None:
                    take(f.path, f"a video recorded in {other.name} (job {e.job_id})")
    out: list[str] = []
    for parent, names in files.items():
        here = taken.get(real.folder(parent))
        if not here:
            continue
        for name, job_id in names:
            clash = here.get(name.casefold())
            if clash:
                rel = f"{parent}/{name}" if parent else name
                out.append(f"job {job_id}: {rel} would overwrite {clash}")
    return out


def _overwrite_problems(
    campaign: Campaign,
    writes: Sequence[PlanItem],
    files: Files,
    entries: Mapping[str, LockEntry],
    prefix: str,
) -> list[str]:
    """Planned files that would replace an input image, a YAML file, or any file already there
    that the lock does not hold for that job (a file it does hold is re-downloaded or kept)."""
    base = campaign.manifest.base_dir
    real = _Resolver(base)
    inputs = _input_images(campaign)
    owned = _owned(writes, entries, prefix)
    out: list[str] = []
    for parent, names in files.items():
        folder = os.path.join(base, parent)
        present = {n.casefold() for n in os.listdir(folder)} if os.path.isdir(folder) else set()
        for name, job_id in names:
            rel = f"{parent}/{name}" if parent else name
            full = os.path.join(folder, name)
            exists = name.casefold() in present and os.path.lexists(full)
            target = os.path.realpath(full).casefold() if exists else "/".join(real(rel))
            if image := inputs.get(target):
                out.append(f"job {job_id}: {rel} would overwrite the input image {image}")
            elif what := protected_name(name):
                out.append(f"job {job_id}: {rel} would overwrite {what}")
            elif exists and job_id not in owned.get(rel.casefold(), ()) and not os.path.isdir(full):
                # (a folder there is reported by _path_problems)
                out.append(
                    f"job {job_id}: {rel} already exists and the lock does not record it "
                    "for this job (move it away, or change output.path)"
                )
    return out


def _input_images(campaign: Campaign) -> dict[str, str]:
    """Real paths (casefolded) of every local input image and last frame -> as written."""
    out: dict[str, str] = {}
    for spec in campaign.specs:
        for ref in (spec.image, spec.last_frame):
            if ref is not None and ref.kind == "path" and ref.value not in out:
                out[os.path.realpath(ref.value).casefold()] = ref.display
    return out


def _owned(
    writes: Sequence[PlanItem], entries: Mapping[str, LockEntry], prefix: str
) -> dict[str, set[str]]:
    """Paths (casefolded, relative to the manifest's folder) -> the jobs the lock holds them
    for: every file it records, and the output paths of jobs it has bought and still has to
    fetch (a crash between a download's rename and its journal record leaves such a file)."""
    owned: dict[str, set[str]] = {}
    for e in entries.values():
        for f in e.files:
            if f is not None:
                owned.setdefault(f.path.casefold(), set()).add(e.job_id)
    for item in writes:
        if item.entry is None:
            continue
        if item.entry.job_id != item.job_id:  # renamed: the old id's files are this job's
            for f in item.entry.files:
                if f is not None:
                    owned.setdefault(f.path.casefold(), set()).add(item.job_id)
        if item.action in (Action.RESUME, Action.DOWNLOAD, Action.STORE):
            for path in _outputs(item):
                rel = path if prefix == "." else f"{prefix}/{path}"
                owned.setdefault(rel.casefold(), set()).add(item.job_id)
    return owned


class _Resolver:
    """Paths relative to the manifest's folder -> (real folder, name), casefolded to compare.
    One realpath per folder, cached."""

    def __init__(self, base: Path) -> None:
        self.base = str(base)
        self.dirs: dict[str, str] = {}

    def folder(self, parent: str) -> str:
        real = self.dirs.get(parent)
        if real is None:
            real = os.path.realpath(os.path.join(self.base, parent)).casefold()
            self.dirs[parent] = real
        return real

    def __call__(self, rel: str) -> tuple[str, str]:
        parent, name = os.path.split(rel)
        return self.folder(parent), name.casefold()


_RECORDED = (Action.RELOCATE, Action.STORE, Action.DOWNLOAD)
"""Actions that write videos the lock records (bytes and all), not new ones."""


def _space_problems(
    writes: Sequence[PlanItem], folder: Path, free_bytes: Callable[[Path], int]
) -> list[str]:
    need = 0
    for item in writes:
        recorded = item.entry.files if item.entry is not None else ()
        if item.action in _RECORDED and recorded and all(f is not None for f in recorded):
            # the lock knows these videos' exact sizes: no estimate needed
            need += sum(f.bytes for f in recorded if f is not None)
        elif item.spec is not None:
            need += video_bytes(item.spec.request)
        elif item.audio is not None:  # one video of its job, with sound
            need += video_bytes({**item.audio.video.request, "count": 1})
    free = free_bytes(folder)
    if need <= free:
        return []
    return [
        f"the planned videos need up to {_size(need)} and {folder} has {_size(free)} free "
        "(a generous estimate from resolution x duration)"
    ]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n //= 1000
    return f"{n:,} TB"


# ---------------------------------------------------------------- consent to spend

Ask = Callable[[str], bool]
"""Puts a question to the person at the terminal; True when they typed `yes`."""


class SpendDeclined(I2VError):
    """The person at the terminal did not confirm the spend: nothing is bought, exit 1."""

    exit_code = 1


def spend(items: Iterable[PlanItem]) -> tuple[int, int]:
    """(videos, estimated credits) the plan would buy."""
    videos = credits = 0
    for i in items:
        if i.action.submits and i.spec is not None:
            videos += i.spec.variants
            credits += i.credits
        elif i.action is Action.AUDIO:  # the audio stage: a paid video with audio, each
            videos += 1
            credits += i.credits
    return videos, credits


def endpoint_label(endpoint: str) -> str:
    """Scheme and host only: a URL's user:password part must never be printed."""
    parts = urlsplit(endpoint)
    host = parts.hostname or endpoint
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def confirm_spend(
    campaign: Campaign,
    items: Iterable[PlanItem],
    *,
    yes: bool,
    max_credits: int | None,
    ask: Ask | None,
) -> None:
    """Consent before buying on a real endpoint (anything but the embedded `emulator`): --yes,
    a max_credits that covers the estimate, or `yes` typed when ask (a terminal) is given."""
    videos, credits = spend(items)
    if campaign.provider.is_emulator or yes or not videos:
        return
    budget = max_credits if max_credits is not None else campaign.limits.max_credits
    if budget is not None and budget >= credits:
        return
    where = endpoint_label(campaign.provider.endpoint)
    what = f"buy {plural(videos, 'video')} for ~{plural(credits, 'credit')} on {where}"
    if ask is None:
        over = f" (max_credits {budget} does not cover it)" if budget is not None else ""
        raise UsageError(
            f"this run would {what}{over}, and there is no terminal to confirm it on",
            hint=f"pass --yes, or set --max-credits (or limits.max_credits) to at least {credits}",
        )
    if not ask(f"Type yes to {what}"):
        raise SpendDeclined(
            "not confirmed: nothing was bought", hint="run again and type `yes`, or pass --yes"
        )
