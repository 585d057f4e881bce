"""Render tasks in worker processes: :class:`concurrent.futures.ProcessPoolExecutor` on a ``spawn`` context.

Workers are spawned, never forked: forking a caller that has used OpenCV's or torch's thread pools can deadlock
the children.  A spawned worker first runs :mod:`._worker_boot` (through :func:`runpy.run_path`, so nothing of
poserepro is imported for it), which registers bare ``poserepro`` and ``poserepro.data`` packages pointing at
this source tree; unpickling the first task then imports only this subpackage, ``errors``, ``io`` and
``keypoints`` (numpy and OpenCV, not torch), so a worker is ready in a fraction of a second.

A ``spawn`` child normally re-runs the caller's ``__main__`` script first, which breaks (and slows down) any
script without an ``if __name__ == "__main__":`` guard.  The workers only render, so the pool starts them while
``sys.modules["__main__"]`` is briefly a bare module: they never run the caller's script.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import runpy
import sys
import types
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ...errors import DataError
from .render import Task, render_to_file

#: The script a worker runs before its first task, and the ``__name__`` it runs under.
BOOT_SCRIPT = Path(__file__).with_name("_worker_boot.py")
BOOT_RUN_NAME = "__poserepro_synth_worker__"  # the same string as _worker_boot._RUN_NAME (it imports nothing)


@contextlib.contextmanager
def _caller_main_hidden() -> Iterator[None]:
    """While open, processes spawned from here do not re-run the caller's ``__main__`` script."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is None:
            sys.modules.pop("__main__", None)
        else:
            sys.modules["__main__"] = main


def _outcome(future: Future[list[dict[str, Any]]], path: str) -> list[dict[str, Any]]:
    """The annotations of a finished task; a worker's ``OSError`` becomes a one-line :class:`DataError`."""
    try:
        return future.result()
    except OSError as e:
        raise DataError(f"writing synthetic image {path} failed: {type(e).__name__}: {e}") from None
    except BrokenProcessPool as e:
        raise RuntimeError(f"a synthetic worker process died while rendering {path}: {e}") from None
    except Exception as e:
        raise RuntimeError(f"synthetic worker failed on {path}: {type(e).__name__}: {e}") from e


def run_workers(tasks: list[Task], nproc: int) -> Generator[tuple[int, list[dict[str, Any]]], None, None]:
    """Render ``tasks`` in ``nproc`` worker processes; yields ``(position, annotations)`` as they finish.

    Closing the iterator early (or an error) cancels the tasks not yet started and waits for the running ones.
    """
    executor = ProcessPoolExecutor(
        max_workers=nproc,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=runpy.run_path,
        initargs=(str(BOOT_SCRIPT), None, BOOT_RUN_NAME),
    )
    try:
        with _caller_main_hidden():  # the executor starts its processes inside submit()
            positions = {executor.submit(render_to_file, task): pos for pos, task in enumerate(tasks)}
        for future in as_completed(positions):
            pos = positions[future]
            yield pos, _outcome(future, tasks[pos][3])
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
