"""Errors raised by the slotlab dataset readers (real dataset files: DeepMind TFRecords, CLEVR v1.0 folder).

A single exception type lets callers catch every "the file on disk is not what we expected" problem in one
place. Messages always name the offending file (and, for record files, the record index) and say what to do.
"""

from __future__ import annotations

from slotlab.errors import UserError


class DatasetFileError(UserError, ValueError):
    """A dataset file or folder is missing, truncated, corrupt or does not match the expected format."""


class UnknownDatasetError(UserError, ValueError):
    """A dataset name that is not one of the built-in datasets (the message suggests the nearest ones)."""
