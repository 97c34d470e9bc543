"""Project exceptions. Errors are part of the interface: each names the bad input and what to do.

Example:
    >>> from ptft_keras.errors import DataError
    >>> str(DataError("label 'maybe' is not in the label vocabulary", path="dev.tsv", line=7, field="label"))
    "dev.tsv, line 7, field 'label': label 'maybe' is not in the label vocabulary"
"""
from __future__ import annotations


class PtftError(Exception):
    """Base class of every error ptft_keras raises on purpose."""


class LocatedError(PtftError):
    """An error about a file, optionally at a 1-based line (as an editor shows it) and a field."""

    def __init__(self, message: str, *, path=None, line: int | None = None, field: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class CheckpointError(LocatedError):
    """A checkpoint (directory or file) cannot be loaded or saved."""


class DataError(LocatedError):
    """Input data is malformed: bad row, missing column, unknown label, empty file, ..."""


class ConfigError(PtftError):
    """A configuration value is invalid."""
