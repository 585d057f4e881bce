"""Resumable, verified downloads and safe archive extraction (standard library only, no UI).

* :func:`download_file` fetches one URL into ``dest`` through ``dest.part``; a re-run resumes with an HTTP
  ``Range`` request (a server that ignores it answers 200 and the file restarts from zero), then checks size,
  sha256 and md5. A wrong checksum moves the file aside to ``dest.corrupt``.
* :func:`safe_extract` unpacks a zip / tar(.gz) into a temporary directory next to the destination, refusing
  absolute paths, ``..`` components and links that point outside, and moves the result into place only when
  everything succeeded.
* :func:`download_dataset` puts the catalog's parts of COCO or MPII under ``root/<name>/`` idempotently,
  from the official host, a ``mirror`` with the same layout, or a local folder / archive (``from_dir``).

Progress goes through an optional callback ``progress(label, done_bytes, total_bytes_or_None)`` so that the
library stays UI-free (the CLI renders it with rich).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from poserepro.data.datasets_catalog import CatalogEntry, get_entries, parse_parts
from poserepro.errors import DownloadError

#: ``progress(label, done_bytes, total_bytes)``; ``total_bytes`` is ``None`` when unknown.
ProgressFn = Callable[[str, int, "int | None"], None]

#: Per-dataset folder (below ``root/<name>/``) holding verified markers and the checksum manifest.
META_DIR = ".poserepro"
MANIFEST_NAME = "manifest.json"

_USER_AGENT = "poserepro-download/0.1 (+urllib)"


class ChecksumMismatch(DownloadError):
    """The downloaded (or announced) file does not match the expected size or checksum."""


# ----------------------------------------------------------------------------------------------- hashing
class _Hashes:
    """sha256 + md5 computed together in one pass."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.md5.update(data)
        self.size += len(data)

    def result(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256.hexdigest(), "md5": self.md5.hexdigest()}


def _hash_into(
    path: Path, hashes: _Hashes, chunk: int, progress: ProgressFn | None, label: str, total: int | None
) -> None:
    with open(path, "rb") as fh:
        while data := fh.read(chunk):
            hashes.update(data)
            if progress is not None:
                progress(label, hashes.size, total)


def file_digests(path: Path, *, progress: ProgressFn | None = None, chunk: int = 1 << 20) -> dict[str, Any]:
    """Size, sha256 and md5 (lowercase hex) of a local file: ``{"size", "sha256", "md5"}``."""
    path = Path(path)
    hashes = _Hashes()
    _hash_into(path, hashes, chunk, progress, f"verify {path.name}", path.stat().st_size)
    return hashes.result()


def _mismatch(
    got: dict[str, Any], size: int | None, sha256: str | None, md5: str | None, sha256_prefix: str | None = None,
) -> str | None:
    """Human description of the first difference between ``got`` and the expectations, else ``None``.

    ``sha256_prefix``: the leading hex digits of the sha256 when only those are published (torch.hub-style file
    names such as ``resnet50-19c8e357.pth``).
    """
    if size is not None and got["size"] != size:
        return f"expected {size} bytes, got {got['size']}"
    if sha256 and got["sha256"] != sha256.lower():
        return f"expected sha256 {sha256.lower()}, got {got['sha256']}"
    if sha256_prefix and not got["sha256"].startswith(sha256_prefix.lower()):
        return f"expected a sha256 starting {sha256_prefix.lower()}, got {got['sha256']}"
    if md5 and got["md5"] != md5.lower():
        return f"expected md5 {md5.lower()}, got {got['md5']}"
    return None


# --------------------------------------------------------------------------------------------- download
def _write_chunk(fh: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a separate function so tests can inject OSError)."""
    view = memoryview(data)
    while view:
        n = fh.write(view)
        if n is None:  # pragma: no cover - non-blocking files only
            continue
        view = view[n:]


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _corrupt_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".corrupt")


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_CONTENT_RANGE_UNSAT = re.compile(r"bytes\s+\*/(\d+)")


def _open_url(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or str(err) or type(err).__name__
    return str(reason).replace("\n", " ")


def download_file(
    url: str,
    dest: Path,
    *,
    size: int | None,
    sha256: str | None,
    md5: str | None,
    progress: ProgressFn | None = None,
    chunk: int = 1 << 20,
    timeout: float = 30,
    digests: dict[str, Any] | None = None,
    sha256_prefix: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` resumably and verify it; return ``dest``.

    Bytes go to ``dest.part``. If that file exists the request carries ``Range: bytes=N-``: a 206 answer is
    appended, a 200 answer (server ignores ranges) restarts from zero. After the transfer the size and the
    given checksums are checked; a mismatch moves the file to ``dest.corrupt`` and raises
    :class:`DownloadError` naming the expected and actual values. A network failure or a write error
    (e.g. ENOSPC) keeps ``dest.part`` so that a re-run resumes. An existing ``dest`` that verifies is
    returned without network access (one that does not is moved aside and downloaded again).

    Args:
        url: ``http://`` or ``https://`` URL.
        dest: final path; its parent is created.
        size, sha256, md5: expectations, each ``None`` when unknown.
        progress: optional ``progress(label, done, total)`` callback.
        chunk: read size in bytes.
        timeout: socket timeout in seconds for connect and each read.
        digests: if given, filled with ``{"size", "sha256", "md5"}`` of the final file.
        sha256_prefix: leading hex digits the sha256 must start with (when only a prefix is published).
    """
    dest = Path(dest)
    if not url.lower().startswith(("http://", "https://")):
        raise DownloadError(
            f"cannot download {url!r}: only http(s) URLs are supported; use --from for local files"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, corrupt, label = _part_path(dest), _corrupt_path(dest), dest.name

    if dest.exists():
        got = file_digests(dest, progress=progress, chunk=chunk)
        if _mismatch(got, size, sha256, md5, sha256_prefix) is None:
            if digests is not None:
                digests.update(got)
            return dest
        os.replace(dest, corrupt)

    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0

    hashes: _Hashes | None = None  # set when the streamed bytes cover the whole .part file
    for _attempt in range(3):
        if size is not None and 0 < offset == size:
            break  # a previous run got every byte but stopped before verification
        try:
            resp = _open_url(url, offset, timeout)
        except urllib.error.HTTPError as err:
            content_range = err.headers.get("Content-Range", "") if err.headers else ""
            err.close()
            if err.code == 416 and offset > 0:
                m = _CONTENT_RANGE_UNSAT.search(content_range)
                if m and int(m.group(1)) == offset:
                    break  # the .part file already holds the whole file
                part.unlink()
                offset = 0
                continue
            raise DownloadError(
                f"HTTP {err.code} ({err.reason}) for {url}: check the URL / --mirror"
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            raise DownloadError(
                f"cannot reach {url} ({_reason(err)}): check the network or --mirror and re-run"
                + (f"; the download resumes from {offset} bytes" if offset else "")
            ) from None

        with resp:
            status = resp.status
            length_hdr = resp.headers.get("Content-Length")
            length = int(length_hdr) if length_hdr and length_hdr.isdigit() else None
            if offset > 0 and status == 206:
                m = _CONTENT_RANGE.search(resp.headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != offset:
                    part.unlink()
                    offset = 0
                    continue  # inconsistent partial answer: restart without Range
                total: int | None = int(m.group(3)) if m.group(3) != "*" else None
                mode = "ab"
            else:
                offset, mode, total = 0, "wb", length  # 200: the server sent the whole file
            if total is None and length is not None:
                total = offset + length
            if size is not None and total is not None and total != size:
                raise ChecksumMismatch(
                    f"{url} is {total} bytes but {dest.name} should be {size}: wrong file or --mirror?"
                )
            hashes = _Hashes()
            if mode == "ab":
                _hash_into(part, hashes, chunk, progress, label, total)
            received = _stream(resp, part, mode, hashes, chunk, progress, label, total, url)
            if length is not None and received < length:
                done = part.stat().st_size
                raise DownloadError(
                    f"download of {url} was interrupted after {done} of {total} bytes (connection closed); "
                    f"re-run to resume from {done} bytes"
                )
            offset = part.stat().st_size
            break
    else:
        raise DownloadError(f"{url} answers Range requests inconsistently; delete {part} and re-run")

    if hashes is None or hashes.size != part.stat().st_size:
        hashes = _Hashes()
        _hash_into(part, hashes, chunk, progress, label, size)
    got = hashes.result()
    problem = _mismatch(got, size, sha256, md5, sha256_prefix)
    if problem is not None:
        os.replace(part, corrupt)
        raise ChecksumMismatch(
            f"checksum mismatch for {dest.name} from {url}: {problem}; the file was moved aside to {corrupt} "
            "(nothing extracted): check the URL / --mirror and re-run"
        )
    os.replace(part, dest)
    if digests is not None:
        digests.update(got)
    return dest


def _stream(
    resp: http.client.HTTPResponse,
    part: Path,
    mode: str,
    hashes: _Hashes,
    chunk: int,
    progress: ProgressFn | None,
    label: str,
    total: int | None,
    url: str,
) -> int:
    """Copy the response body into ``part``; return the number of body bytes received."""
    received = 0
    fh = open(part, mode, buffering=0)  # unbuffered: what write() accepted is on disk, close cannot fail
    try:
        while True:
            try:
                data = resp.read(chunk)
            except (OSError, http.client.HTTPException) as err:
                fh.close()
                done = part.stat().st_size
                raise DownloadError(
                    f"download of {url} was interrupted after {done} bytes ({_reason(err)}); "
                    f"re-run to resume from {done} bytes"
                ) from None
            if not data:
                break
            try:
                _write_chunk(fh, data)
            except OSError as err:
                fh.close()
                done = part.stat().st_size
                raise DownloadError(
                    f"writing {part} failed ({_reason(err)}): disk full? free space and re-run: "
                    f"the download resumes from {done} bytes"
                ) from None
            hashes.update(data)
            received += len(data)
            if progress is not None:
                progress(label, hashes.size, total)
    finally:
        fh.close()
    return received


# --------------------------------------------------------------------------------------------- extract
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
    target = tmp / rel
    if not _inside(os.path.realpath(tmp), str(target.parent)):
        raise DownloadError(f"refusing to extract {archive.name}: member {name!r} is written through a link")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    return target


def _extract_zip(archive: Path, tmp: Path) -> None:
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


# ------------------------------------------------------------------------------- markers and manifest
def marker_path(ds_root: Path, entry: CatalogEntry) -> Path:
    """Path of the ``.verified`` marker of ``entry`` below ``root/<dataset>``."""
    return Path(ds_root) / META_DIR / f"{entry.filename}.verified"


def read_marker(path: Path) -> dict[str, Any] | None:
    """Content of a verified marker, or ``None`` when absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def manifest_path(ds_root: Path) -> Path:
    """Path of the checksum manifest (sizes / sha256 recorded for archives without published checksums)."""
    return Path(ds_root) / META_DIR / MANIFEST_NAME


def load_manifest(ds_root: Path) -> dict[str, Any]:
    """The manifest as ``{filename: {"size", "sha256", "md5", "url", "recorded"}}`` (empty if none)."""
    data = read_marker(manifest_path(ds_root))
    return data or {}


def _atomic_write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _expected(
    entry: CatalogEntry, manifest: dict[str, Any]
) -> tuple[int | None, str | None, str | None, bool]:
    """(size, sha256, md5, from_manifest) to check ``entry`` against."""
    if entry.has_checksum:
        return entry.size, entry.sha256, entry.md5, False
    rec = manifest.get(entry.filename)
    if isinstance(rec, dict) and rec.get("sha256"):
        return rec.get("size"), rec["sha256"], rec.get("md5"), True
    return entry.size, None, None, False


def _is_done(ds_root: Path, entry: CatalogEntry) -> bool:
    marker = read_marker(marker_path(ds_root, entry))
    if marker is None or not entry.produces:
        return False
    if entry.sha256 and marker.get("sha256") not in (None, entry.sha256):
        return False  # stale marker from another file
    return all((ds_root / p).exists() for p in entry.produces)


# ------------------------------------------------------------------------------------------ from_dir
def _find_local(from_dir: Path, name: str, entry: CatalogEntry) -> tuple[str, Path] | None:
    """Find ``entry`` in a local folder: ``("archive", file)`` or ``("extracted", base_dir)``."""
    for base in (from_dir, from_dir / name):
        for cand in (base / entry.filename, base / entry.rel_path):
            if cand.is_file():
                return "archive", cand
    for base in (from_dir, from_dir / name):
        if entry.produces and all((base / p).exists() for p in entry.produces):
            return "extracted", base
    return None


def _resolve_from(
    from_dir: Path, name: str, entries: dict[str, CatalogEntry], parts: list[str]
) -> dict[str, tuple[str, Path]]:
    if not from_dir.exists():
        raise DownloadError(
            f"--from {from_dir} does not exist: pass a folder holding the archives or one archive"
        )
    if from_dir.is_file():
        if len(parts) == 1:
            return {parts[0]: ("archive", from_dir)}
        matches = [p for p in parts if entries[p].filename == from_dir.name]
        if not matches:
            known = ", ".join(entries[p].filename for p in parts)
            raise DownloadError(
                f"{from_dir.name} is none of the requested {name} archives ({known}): "
                "name its part with --parts"
            )
        return {matches[0]: ("archive", from_dir)}
    found: dict[str, tuple[str, Path]] = {}
    for p in parts:
        hit = _find_local(from_dir, name, entries[p])
        if hit is None:
            e = entries[p]
            looked = e.filename + (f" or an extracted {e.produces[0]}" if e.produces else "")
            raise DownloadError(
                f"part {p!r} not found in {from_dir} (looked for {looked}): "
                "add it there or drop --from to download"
            )
        found[p] = hit
    return found


def _link_extracted(base: Path, ds_root: Path, entry: CatalogEntry) -> list[str]:
    """Symlink an already-extracted part into ``ds_root`` (nothing is copied); return what was linked."""
    linked = []
    for rel in entry.produces:
        src, dst = (base / rel).resolve(), ds_root / rel
        if dst.exists() or dst.is_symlink():
            if dst.resolve() != src:
                linked.append(f"{rel} (kept existing)")
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst, target_is_directory=src.is_dir())
        linked.append(rel)
    return linked


# -------------------------------------------------------------------------------------------- dataset
def download_dataset(
    name: str,
    root: Path,
    parts: Iterable[str] | str | None = None,
    mirror: str | None = None,
    from_dir: Path | None = None,
    progress: ProgressFn | None = None,
    *,
    keep_archives: bool = False,
    timeout: float = 30,
) -> dict[str, dict[str, Any]]:
    """Fetch, verify and extract the requested ``parts`` of dataset ``name`` into ``root/<name>/``.

    Final layout: ``root/coco/{train2017,val2017,test2017,annotations}/`` and ``root/mpii/{images,annot}/``.
    Idempotent: a part whose ``.verified`` marker (holding the archive hash, in ``root/<name>/.poserepro/``)
    exists and whose extracted paths are present is skipped. Archives without published checksums (MPII)
    get their size / sha256 recorded in ``root/<name>/.poserepro/manifest.json`` on first download; later
    downloads must match that record.

    Args:
        name: ``"coco"`` or ``"mpii"``.
        root: data root (the CLI's ``--root``, default ``./data``).
        parts: part names (list or comma-separated string); ``None`` = the catalog's defaults.
        mirror: replaces the scheme + host of the official URLs (the mirror keeps the relative paths).
        from_dir: a local folder holding the archives (or already-extracted folders, which are symlinked
            into ``root``), or a single archive; nothing is downloaded.
        progress: optional ``progress(label, done, total)`` callback.
        keep_archives: keep downloaded archives in ``root/<name>/downloads/`` after extraction.
        timeout: socket timeout in seconds.

    Returns:
        ``{part: {"status": "downloaded" | "local" | "linked" | "skipped", "path", "archive", "sha256",
        "checksum": "published" | "manifest" | "recorded" | "none", "note"}}``.
    """
    entries = get_entries(name)
    wanted = parse_parts(name, list(parts) if parts is not None and not isinstance(parts, str) else parts)
    for p in wanted:
        e = entries[p]
        if e.where is not None:
            hint = "pass the file with --det-file PATH" if p == "dets" else "place the files as described"
            raise DownloadError(f"{name} part {p!r} has no stable public URL: {e.where}; {hint}")
    root = Path(root)
    ds_root = root / name
    local: dict[str, tuple[str, Path]] | None = None
    if from_dir is not None:
        local = _resolve_from(Path(from_dir), name, entries, wanted)
        wanted = [p for p in wanted if p in local]

    results: dict[str, dict[str, Any]] = {}
    for p in wanted:
        e = entries[p]
        if _is_done(ds_root, e):
            marker = read_marker(marker_path(ds_root, e)) or {}
            results[p] = {
                "status": "skipped",
                "path": str(ds_root),
                "archive": marker.get("archive"),
                "sha256": marker.get("sha256"),
                "checksum": marker.get("checksum", "none"),
                "note": "already verified",
            }
            continue
        results[p] = _fetch_part(
            name,
            ds_root,
            e,
            mirror,
            local[p] if local else None,
            progress,
            keep_archives=keep_archives,
            timeout=timeout,
        )
    return results


def _fetch_part(
    name: str,
    ds_root: Path,
    e: CatalogEntry,
    mirror: str | None,
    local: tuple[str, Path] | None,
    progress: ProgressFn | None,
    *,
    keep_archives: bool,
    timeout: float,
) -> dict[str, Any]:
    manifest = load_manifest(ds_root)
    size, sha256, md5, from_manifest = _expected(e, manifest)
    mpath = manifest_path(ds_root)
    marker = marker_path(ds_root, e)

    if local is not None and local[0] == "extracted":
        linked = _link_extracted(local[1], ds_root, e)
        _atomic_write_json(
            marker,
            {
                "part": e.part,
                "archive": None,
                "sha256": None,
                "checksum": "none",
                "source": str(local[1]),
                "linked": linked,
                "time": time.time(),
            },
        )
        return {
            "status": "linked",
            "path": str(ds_root),
            "archive": None,
            "sha256": None,
            "checksum": "none",
            "note": f"symlinked already-extracted {', '.join(linked) or 'folders'} from {local[1]} (no hash)",
        }

    downloaded = local is None
    if local is not None:
        archive = local[1]
        got = file_digests(archive, progress=progress)
        problem = _mismatch(got, size, sha256, md5)
        if problem is not None:
            where = f" (recorded in {mpath} at first download)" if from_manifest else ""
            raise DownloadError(f"{archive} does not verify: {problem}{where}; replace it or drop --from")
    else:
        url = e.url_for(mirror)
        assert url is not None
        archive = ds_root / "downloads" / e.filename
        got = {}
        try:
            download_file(
                url,
                archive,
                size=size,
                sha256=sha256,
                md5=md5,
                progress=progress,
                timeout=timeout,
                digests=got,
            )
        except ChecksumMismatch as err:
            if from_manifest:
                raise ChecksumMismatch(
                    f"{err} (expected value recorded in {mpath} at first download; "
                    "remove that entry if the server's file legitimately changed)"
                ) from None
            raise

    if e.has_checksum:
        checksum, note = "published", "size and checksum verified"
    elif from_manifest:
        checksum, note = "manifest", f"no published checksum; matches the sha256 recorded in {mpath}"
    else:
        checksum = "recorded"
        note = f"no published checksum; recorded size {got['size']} and sha256 {got['sha256']} in {mpath}"
        manifest[e.filename] = {
            "size": got["size"],
            "sha256": got["sha256"],
            "md5": got["md5"],
            "url": e.url_for(mirror) if downloaded else str(archive),
            "recorded": time.time(),
        }
        _atomic_write_json(mpath, manifest)

    dest_dir = ds_root / e.extract_to if e.extract_to else ds_root
    safe_extract(archive, dest_dir)
    missing = [p for p in e.produces if not (ds_root / p).exists()]
    if missing:
        raise DownloadError(
            f"{archive.name} did not contain {missing[0]}: is it the right archive for {e.part!r}?"
        )
    _atomic_write_json(
        marker,
        {
            "part": e.part,
            "archive": e.filename,
            "sha256": got["sha256"],
            "size": got["size"],
            "checksum": checksum,
            "time": time.time(),
        },
    )
    if downloaded and not keep_archives:
        with contextlib.suppress(OSError):
            archive.unlink()
    return {
        "status": "downloaded" if downloaded else "local",
        "path": str(dest_dir),
        "archive": str(archive),
        "sha256": got["sha256"],
        "checksum": checksum,
        "note": note,
    }
