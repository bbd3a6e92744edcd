"""User-facing errors.

Everything a user can get wrong (a bad value, a missing file, no network, no GPU) raises a
``DistillError``. The CLI turns it into one ``error: ...`` line and exit code 2; the app shows
its message. Anything else that escapes is a bug, and deserves its traceback.
"""


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


class TrainingDiverged(DistillError):
    """The loss became NaN or infinite: the learning rate (or T) is out of reach."""


class Cancelled(Exception):
    """Raised inside training when the stop event is set; never reaches the user."""
