"""The ground floor for files: atomic writes, JSON reading with one-line errors, safe ``torch.load``.

Every file poserepro writes goes through :func:`atomic_write_bytes` (temporary file in the same folder, fsync,
``os.replace``), so an interrupted write never leaves a half-written file or destroys the previous one. Every
JSON file it reads goes through :func:`read_json`, whose errors name the file and the fix in one line. Nothing
here imports anything of poserepro but :mod:`poserepro.errors`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import CheckpointError, DataError, PoseReproError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename); parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(path: str | Path, option: str, folder: bool = False) -> Path:
    """Fail early, in one line, when ``path`` cannot take what a command will write there: a folder where a file
    goes (or the reverse), a parent that is a file, or a place without write permission. Nothing is created."""
    p = Path(path)
    if p.exists() and p.is_dir() != folder:
        raise PoseReproError(f"{option} {p} is {'a file' if folder else 'a folder'}; give "
                             f"{'a folder' if folder else 'a file path'}")
    parent = p if folder and p.exists() else p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise PoseReproError(f"{option} {p}: {parent} is a file, not a folder")
    try:  # what the write will do (os.access says yes to root on /proc): an unnamed file, gone on close
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise PoseReproError(f"{option} {p}: cannot write in {parent} ({e.strerror or e}; permissions or a "
                             "read-only file system?)") from None
    return p


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic UTF-8 text write."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2,
                      default: Callable[[Any], Any] | None = None) -> None:
    """Atomic JSON write, newline-terminated; ``default`` converts values ``json`` cannot (e.g. numpy)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, default=default) + "\n")


def read_json(path: str | Path, what: str = "JSON file", missing: str = "check the path",
              error: type[PoseReproError] = DataError) -> Any:
    """Load a JSON file; a missing, unreadable or malformed file raises ``error`` with a one-line message.

    Args:
        what: what the file is, for the message ("annotation file", "detection file", ...).
        missing: the fix to suggest when the file does not exist.
        error: the :class:`~poserepro.errors.PoseReproError` subclass to raise.
    """
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} not found: {p} ({missing})")
    try:
        with p.open("r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise error(f"{what} {p} is not valid JSON (line {e.lineno}: {e.msg}); re-download or regenerate it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{what} {p} cannot be read ({type(e).__name__}: {e}); re-download or regenerate it") from None


@contextmanager
def locked(path: str | Path, timeout: float = 120.0) -> Iterator[None]:
    """Hold an inter-process lock on ``path`` (a ``PATH.lock`` file beside it) for a read-modify-write, so that
    concurrent writers (sweeps, several evals) never lose each other's rows."""
    from filelock import FileLock, Timeout

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(p) + ".lock", timeout=timeout):
            yield
    except Timeout:
        raise PoseReproError(f"{p} stayed locked by another poserepro process for {timeout:.0f} s; "
                             f"if none is running, delete {p}.lock") from None


def atomic_write_figure(path: str | Path, fig: Any, dpi: int = 120) -> None:
    """Render a matplotlib figure as PNG and write it atomically (the figure is not closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for writers that need a file name (``cv2.VideoWriter``, exporters); it is
    renamed onto ``path`` when the block ends without an error and removed otherwise. The temporary name keeps
    ``path``'s suffix (writers pick their format by it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: the entry a saved dict carries: sha256 over its tensors (names, dtypes, shapes, bytes), verified on load
CHECKSUM_KEY = "tensors_sha256"


def tensors_sha256(obj: Any) -> str:
    """sha256 over every tensor in ``obj`` (nested dicts / lists / tuples), in a canonical order: the key path,
    dtype and shape of each tensor and its bytes. The ``tensors_sha256`` entry itself is left out."""
    import torch

    h = hashlib.sha256()

    def walk(node: Any, where: str) -> None:
        if isinstance(node, torch.Tensor):
            t = node.detach().cpu().contiguous().reshape(-1)
            h.update(f"{where}|{t.dtype}|{tuple(node.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(node, dict):
            for k in sorted(node, key=str):
                if k != CHECKSUM_KEY:
                    walk(node[k], f"{where}/{k}")
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(obj, "")
    return h.hexdigest()


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    """``torch.save`` ``obj`` atomically; a dict gets a ``tensors_sha256`` entry that loading verifies, so a
    bit flipped inside a weight tensor (which the zip container does not notice) is refused."""
    import torch

    if isinstance(obj, dict):
        obj = {**obj, CHECKSUM_KEY: tensors_sha256(obj)}
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def verify_tensors(obj: Any, path: str | Path, what: str = "checkpoint") -> Any:
    """``obj`` without its ``tensors_sha256`` entry, after checking it (files without one, e.g. official
    releases, pass as they are: their download is checked against the catalogue's sha256 instead)."""
    if not isinstance(obj, dict) or CHECKSUM_KEY not in obj:
        return obj
    obj = dict(obj)
    want = obj.pop(CHECKSUM_KEY)
    if tensors_sha256(obj) != want:
        raise CheckpointError(f"{what} {path} fails its tensor checksum (the file was altered or damaged after "
                              "it was written): re-train, re-save or re-download it")
    return obj


def load_torch(path: str | Path, map_location: Any = "cpu", what: str = "checkpoint") -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a dict (checkpoint or state dict): no code from the file runs. A
    missing, truncated or foreign file, or one that holds no dict, raises a one-line :class:`CheckpointError`."""
    p = Path(path)
    obj = verify_tensors(_torch_load(p, map_location, what), p, what)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {p} holds a {type(obj).__name__}, not a state dict")
    return obj


def _torch_load(p: Path, map_location: Any, what: str) -> Any:
    import torch

    if p.is_dir():
        raise CheckpointError(f"{what} {p} is a folder, not a checkpoint file: give the file (a run's is "
                              "checkpoint.pth) or the run directory as the command's first argument")
    if not p.is_file():
        hint = " (weights are a file, official:NAME or an http(s) URL)" if ":" in str(p) else ""
        raise CheckpointError(f"{what} {p} does not exist{hint}: check the path or pass --weights")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        msg = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{what} {p} is corrupt or not a PyTorch file ({msg}): re-save or re-download it"
        ) from None
    except Exception as e:  # pickle.UnpicklingError and friends
        raise CheckpointError(
            f"{what} {p} is corrupt or not a PyTorch checkpoint ({type(e).__name__}): re-save or re-download it"
        ) from None
