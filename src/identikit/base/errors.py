"""The one exception type users see: a clear, one-line message and exit code 2."""

from __future__ import annotations


class IdentikitError(Exception):
    """A problem with the user's input or environment, reported without a traceback.

    The CLI prints ``identikit: error: <message>`` on stderr and exits with code 2.
    """


class DataError(IdentikitError):
    """A dataset file is missing, malformed, truncated or fails its checksum."""


class CheckpointError(IdentikitError):
    """A checkpoint cannot be read, is unsafe, or does not match its architecture."""


class DifferentSweepError(IdentikitError):
    """An output folder already holds a sweep with other settings or another model."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its repr when it has none), for one-line
    reports of what a user's model or a third-party tool raised."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else repr(exc)
    return line if len(line) <= limit else line[: limit - 3] + "..."
