"""Errors the tap raises when Square (or the way to it) fails for good.

Each message is written for the person running the pipeline: what went wrong, and
which setting to look at. The command line prints it without a traceback (see
``TapSquare.known_failures``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class SquareError(FatalAPIError):
    """A failure talking to Square that retrying will not fix."""


class SquareAuthError(SquareError):
    """Square refused the access token (401) or its permissions (403)."""


class SquareConnectionError(SquareError):
    """Square could not be reached at all (DNS, refused connection, timeout)."""


class SquareRetriesExhaustedError(SquareError):
    """Square kept answering 429 or 5xx after every retry."""
