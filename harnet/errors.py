"""harnet's errors. Each message says what is wrong and what to do about it.

Exit codes used by the CLI: 2 for usage errors (click's own), 1 for input or model errors
(every :class:`HarnetError`).
"""

from __future__ import annotations


class HarnetError(Exception):
    """Base class: a problem the user can fix; the CLI prints it on one line and exits 1."""

    exit_code = 1


class ModelError(HarnetError):
    """A model directory, config or weight file is missing or inconsistent."""


class InputShapeError(HarnetError, ValueError):
    """An input array has the wrong shape for the network."""


class ChecksumError(HarnetError):
    """A downloaded or cached file does not match its published checksum."""


class OfflineError(HarnetError):
    """Weights are needed but not cached and the network may not be used."""


class UnsafePickleError(HarnetError):
    """A pickle asked to run something outside the converter's allow-list."""


class InputError(HarnetError):
    """A device or data file cannot be read or makes no sense."""


class JavaMissingError(InputError):
    """actipy's device readers need a Java runtime and none was found."""
