"""Errors whose message is a single line a user can act on.

The CLI and the app print ``str(error)`` and nothing else, so every message
names the file (and, for a CSV, the row and column) and says what to fix.
"""


class DigitnetError(Exception):
    """Base class: an expected failure caused by input, not by a bug."""


class DataError(DigitnetError):
    """A CSV or IDX file that cannot be read as digits."""


class DownloadError(DigitnetError):
    """A download that failed or whose checksum does not match."""


class ImageError(DigitnetError):
    """An image file that is missing, broken, or too large to decode safely."""


class CheckpointError(DigitnetError):
    """A weights file or its metadata that is missing, broken or mismatched."""
