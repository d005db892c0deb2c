"""The exceptions ugr raises.

Every one is a :class:`UgrError` whose ``status`` is libugr's status name (the same names
``ugr_status_name`` returns in C), and also a subclass of the built-in exception a Python
caller would catch for that kind of failure (``ValueError`` for bad arguments, ``OSError``
for an unreadable file, ...).
"""

from __future__ import annotations

__all__ = [
    "UgrError",
    "InvalidArgumentError",
    "UnknownItemError",
    "ArtifactIOError",
    "CorruptModelError",
    "UnsupportedVersionError",
    "ModelFailedError",
    "PanicError",
    "from_status",
]


class UgrError(Exception):
    """Base class of every ugr exception; ``status`` is libugr's status name."""

    status: str = "UGR_STATUS_UNKNOWN"


class InvalidArgumentError(UgrError, ValueError, TypeError):
    """An argument is out of range or of the wrong type (k or beam of 0, an id that is not a
    non-negative 32-bit integer, decreasing offsets, an unparsable SID prefix, ...)."""

    status = "UGR_STATUS_INVALID_ARGUMENT"


class UnknownItemError(UgrError, ValueError):
    """An item id (in a history, a rule or an availability change) that the catalog does not hold."""

    status = "UGR_STATUS_UNKNOWN_ITEM"


class ArtifactIOError(UgrError, OSError):
    """The artifact file could not be read."""

    status = "UGR_STATUS_IO"


class CorruptModelError(UgrError, ValueError):
    """The bytes are not a valid ugr artifact (bad magic, truncated, checksum mismatch, ...)."""

    status = "UGR_STATUS_CORRUPT_MODEL"


class UnsupportedVersionError(UgrError, ValueError):
    """The artifact was written by a format version this package does not read."""

    status = "UGR_STATUS_UNSUPPORTED_VERSION"


class ModelFailedError(UgrError, RuntimeError):
    """The model failed while running (a backend error or a non-finite output)."""

    status = "UGR_STATUS_MODEL_FAILED"


class PanicError(UgrError, RuntimeError):
    """A bug inside the engine was caught at the boundary (please report it); the engine
    stays usable."""

    status = "UGR_STATUS_PANIC"


_BY_STATUS = {
    cls.status: cls
    for cls in (
        InvalidArgumentError,
        UnknownItemError,
        ArtifactIOError,
        CorruptModelError,
        UnsupportedVersionError,
        ModelFailedError,
        PanicError,
    )
}


def from_status(status: str, message: str) -> UgrError:
    """The exception for libugr status ``status`` (the native module raises through this)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        err = UgrError(message)
        err.status = status
        return err
    return cls(message)
