"""User-facing errors.

Everything a user can get wrong (a bad value, a missing file, no network, no GPU) raises a
``DistillError``. The CLI turns it into one ``error: ...`` line and exit code 2; the app shows
its message. Anything else that escapes is a bug, and deserves its traceback.
"""
import errno
import importlib
from typing import Any


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line, cut to ``limit`` characters (its type's name if it has no text):
    what a table cell, a note or a one-line message can hold of a library's multi-line error."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class DistillError(Exception):
    """A problem the user can fix; its message says how."""


class ConfigError(DistillError):
    """A config value is out of range or names something unknown."""


class DataUnavailableError(DistillError):
    """A dataset cannot be loaded: no network for a download, an empty folder, ..."""


class CheckpointError(DistillError):
    """A checkpoint is not a plain state_dict of the chosen model."""


class DeviceError(DistillError):
    """The requested device is not present, or ran out of memory."""


class StoreDamagedError(DistillError):
    """The run store's file (runs.db) cannot be read as a database; ``path`` names it.

    The run folders are the truth and the store only indexes them, so it can be rebuilt from
    them (``runs/rebuild.py``)."""

    def __init__(self, message: str, path: str = "", reason: str = ""):
        super().__init__(message)
        self.path, self.reason = path, reason


class WriteError(DistillError, OSError):
    """A file could not be written (a full disk, a read-only folder); the message names it.

    An ``OSError`` too (with the original ``errno``), so code that handles a failed write as one
    keeps doing so."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def write_error(path, exc: OSError) -> WriteError:
    """``exc`` (raised while writing ``path``) as a message that names the file: an ``OSError`` from
    ``write()`` carries no file name, and "No space left on device" alone does not say where."""
    if isinstance(exc, WriteError):
        return exc
    err = WriteError(f"cannot write {path}: {exc.strerror or exc}"
                     + (" (free some space on that disk, or write elsewhere: --out, or DISTILL_STUDIO_HOME)"
                        if exc.errno == errno.ENOSPC else ""))
    err.errno, err.strerror, err.filename = exc.errno, exc.strerror, str(path)
    return err


class TrainingDiverged(DistillError):
    """The loss became NaN or infinite: the learning rate (or T) is out of reach."""


class Cancelled(Exception):
    """Raised inside training when the stop event is set; never reaches the user."""


def require(module: str, what: str) -> Any:
    """Import an optional dependency (``requirements.txt`` lists them all), or say which is missing:
    one line for the CLI and the pages, not an ImportError's traceback."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise DistillError(f"{what} needs the {package} package, which is not installed here "
                           f"(pip install -r requirements.txt)") from None

