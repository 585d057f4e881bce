"""Safe extraction of zip and tar(.gz/.bz2/.xz) archives.

:func:`safe_extract` unpacks an archive into a temporary directory next to the destination, refusing absolute
paths, ``..`` components, links that point outside, devices and fifos (tar members also go through tarfile's
``data`` filter where available), and moves the result into place only when everything succeeded.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from poserepro.data.download.transfer import _reason
from poserepro.errors import DownloadError

_DRIVE = re.compile(r"^[A-Za-z]:")


def _safe_relpath(name: str, archive: Path) -> PurePosixPath | None:
    """Member name -> safe relative path (``None`` for the archive root); DownloadError if unsafe."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        raise DownloadError(f"refusing to extract {archive.name}: member {name!r} has an absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DownloadError(
            f"refusing to extract {archive.name}: member {name!r} escapes the destination ('..')"
        )
    return PurePosixPath(*parts) if parts else None


def _inside(base_real: str, path: str) -> bool:
    """Whether ``path`` resolves (links followed) to ``base_real`` or below it."""
    real = os.path.realpath(path)
    return real == base_real or real.startswith(base_real + os.sep)


def _check_link(rel: PurePosixPath, target: str, *, hard: bool, tmp: Path, archive: Path, name: str) -> None:
    """Refuse a symlink / hardlink whose target leaves the extraction directory."""
    kind = "hardlink" if hard else "symlink"
    norm = target.replace("\\", "/")
    bad = norm.startswith("/") or bool(_DRIVE.match(norm)) or not norm
    if not bad:
        lexical = posixpath.normpath(posixpath.join("" if hard else str(rel.parent), norm))
        bad = lexical == ".." or lexical.startswith("../")
        base = str(tmp) if hard else str(tmp / rel.parent)
        bad = bad or not _inside(os.path.realpath(tmp), os.path.join(base, norm))
    if bad:
        raise DownloadError(
            f"refusing to extract {archive.name}: member {name!r} is a {kind} pointing outside ({target!r})"
        )


def _prepare_target(tmp: Path, rel: PurePosixPath, archive: Path, name: str) -> Path:
    """Where member ``rel`` goes below ``tmp``; refuses a parent reached through a link, drops a stale link."""
    target = tmp / rel
    if not _inside(os.path.realpath(tmp), str(target.parent)):
        raise DownloadError(f"refusing to extract {archive.name}: member {name!r} is written through a link")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    return target


def _extract_zip(archive: Path, tmp: Path) -> None:
    """Extract a zip into ``tmp``, every member name checked first; symlink members checked like tar links."""
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check every name before writing anything
            _safe_relpath(info.filename, archive)
        for info in infos:
            rel = _safe_relpath(info.filename, archive)
            if rel is None:
                continue
            mode = info.external_attr >> 16
            if info.is_dir():
                (tmp / rel).mkdir(parents=True, exist_ok=True)
            elif (mode & 0o170000) == 0o120000:  # symlink: the member's data is the link target
                link = zf.read(info).decode("utf-8")
                _check_link(rel, link, hard=False, tmp=tmp, archive=archive, name=info.filename)
                os.symlink(link, _prepare_target(tmp, rel, archive, info.filename))
            else:
                target = _prepare_target(tmp, rel, archive, info.filename)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)


def _extract_tar(archive: Path, tmp: Path) -> None:
    """Extract a tar (streamed, any compression) into ``tmp`` with the ``data`` filter where Python has it."""
    kwargs: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    filter_error: tuple[type[BaseException], ...] = (
        (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
    )
    with tarfile.open(archive, mode="r|*") as tf:  # stream: one pass even over a 13 GB .tar.gz
        for member in tf:
            rel = _safe_relpath(member.name, archive)
            if rel is None:
                continue
            if member.issym() or member.islnk():
                _check_link(
                    rel, member.linkname, hard=member.islnk(), tmp=tmp, archive=archive, name=member.name
                )
            elif not (member.isfile() or member.isdir()):
                raise DownloadError(
                    f"refusing to extract {archive.name}: member {member.name!r} is a device or fifo"
                )
            _prepare_target(tmp, rel, archive, member.name)
            try:
                tf.extract(member, tmp, set_attrs=not member.isdir(), **kwargs)
            except filter_error as err:
                raise DownloadError(
                    f"refusing to extract {archive.name}: member {member.name!r}: {err}"
                ) from None


def _merge_into(src: Path, dst: Path) -> None:
    """Move the contents of ``src`` into the existing directory ``dst`` (renames; replaces clashes)."""
    for child in src.iterdir():
        target = dst / child.name
        if child.is_dir() and not child.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge_into(child, target)
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        os.replace(child, target)


def safe_extract(archive: Path, dest_dir: Path) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest_dir`` safely; return ``dest_dir``.

    Members with absolute paths, ``..`` components, links pointing outside, devices or fifos raise
    :class:`DownloadError` naming the member. Extraction happens in a temporary directory next to
    ``dest_dir``; only after every member succeeded is it renamed into place (merged into an existing
    ``dest_dir`` entry by entry), so a failure leaves nothing behind.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise DownloadError(f"archive {archive} does not exist")
    if zipfile.is_zipfile(archive):
        extractor = _extract_zip
    elif tarfile.is_tarfile(archive):
        extractor = _extract_tar
    else:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive: delete it and re-run")
    if dest_dir.exists() and not dest_dir.is_dir():
        raise DownloadError(f"{dest_dir} exists and is not a directory: move it away and re-run")
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.extract-", dir=dest_dir.parent))
    try:
        try:
            extractor(archive, tmp)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, UnicodeDecodeError) as err:
            raise DownloadError(
                f"archive {archive} is damaged ({_reason(err)}): delete it and re-run"
            ) from None
        except OSError as err:
            raise DownloadError(
                f"extracting {archive} failed ({_reason(err)}): disk full? free space and re-run"
            ) from None
        if dest_dir.exists():
            _merge_into(tmp, dest_dir)
        else:
            os.replace(tmp, dest_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest_dir
