"""Project exceptions.

Every error a user can cause (bad recipe name, malformed override, missing file, corrupt checkpoint, ...)
raises a subclass of :class:`PoseReproError`. The CLI prints these as one line and exits non-zero; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class PoseReproError(Exception):
    """Base class of errors caused by user input; ``str(err)`` is one line that says what to fix."""

    exit_code: int = 2


class UnknownNameError(PoseReproError):
    """An unknown model, recipe, sweep or dataset name."""


class RecipeError(PoseReproError):
    """A malformed recipe file or ``--set key=value`` override."""


class DataError(PoseReproError):
    """Missing, malformed or inconsistent data (annotation files, images, detection files)."""


class CheckpointError(PoseReproError):
    """A missing, corrupt or incompatible checkpoint / weights file."""


class DownloadError(PoseReproError):
    """A failed, interrupted or unverifiable download."""


def suggest(name: str, choices: list[str] | tuple[str, ...], n: int = 3) -> str:
    """Return ``" (did you mean: a, b?)"`` for the closest names in ``choices``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    if not close:
        norm = name.replace("-", "_")
        close = [c for c in choices if norm in c.replace("-", "_")][:n]
    return f" (did you mean: {', '.join(close)}?)" if close else ""
