"""Exception types, one per failure family.

Every message names the file, line or config key at fault and says what was expected, so that
the CLI can print it as is and exit non-zero instead of showing a traceback.
"""

from __future__ import annotations

__all__ = [
    "NlpLibError",
    "ConfigError",
    "DataError",
    "TreeFormatError",
    "StructureError",
    "BundleError",
    "CheckpointError",
    "RunDirError",
]


class NlpLibError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(NlpLibError):
    """A recipe, config group or override is wrong (unknown recipe, unknown key, bad value)."""


class DataError(NlpLibError):
    """A data file or record is missing or malformed.

    Args:
        message: What is wrong and what was expected.
        path: The file at fault, if any.
        line: The 1-based line number at fault, if any.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class TreeFormatError(DataError):
    """A tree string cannot be parsed (unbalanced brackets, missing label, empty node...)."""


class StructureError(NlpLibError):
    """A structure's arrays are inconsistent (a parent after its child, two roots, a cycle...)."""


class BundleError(NlpLibError):
    """A model bundle is missing, corrupted or written by an incompatible version."""


class CheckpointError(NlpLibError):
    """A checkpoint cannot be written (disk full) or read (corrupt, truncated, empty)."""


class RunDirError(NlpLibError):
    """A run directory is in use by another run, or holds another run's files."""
