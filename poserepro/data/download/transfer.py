"""One verified, resumable HTTP(S) download (standard library only, no UI).

:func:`download_file` fetches one URL into ``dest`` through ``dest.part``; a re-run resumes with an HTTP
``Range`` request (a server that ignores it answers 200 and the file restarts from zero), then checks size,
sha256 and md5. A wrong checksum moves the file aside to ``dest.corrupt``. :func:`file_digests` hashes a local
file the same way. Mirrors are resolved by the caller (:meth:`CatalogEntry.url_for`); this module only sees URLs.

Progress goes through an optional callback ``progress(label, done_bytes, total_bytes_or_None)`` so that the
library stays UI-free (the CLI renders it with rich).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from poserepro.errors import DownloadError

#: ``progress(label, done_bytes, total_bytes)``; ``total_bytes`` is ``None`` when unknown.
ProgressFn = Callable[[str, int, "int | None"], None]

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


def _mismatch(got: dict[str, Any], size: int | None, sha256: str | None, md5: str | None) -> str | None:
    """Human description of the first difference between ``got`` and the expectations, else ``None``."""
    if size is not None and got["size"] != size:
        return f"expected {size} bytes, got {got['size']}"
    if sha256 and got["sha256"] != sha256.lower():
        return f"expected sha256 {sha256.lower()}, got {got['sha256']}"
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
        if _mismatch(got, size, sha256, md5) is None:
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
    problem = _mismatch(got, size, sha256, md5)
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
