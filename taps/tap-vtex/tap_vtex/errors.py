"""Errors the tap raises when VTEX (or the way to it) fails for good.

Each carries a message for the person running the pipeline: what went wrong and which
setting to look at. The command line prints them without a traceback (see
``TapVtex.known_failures``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class VtexError(FatalAPIError):
    """A failure talking to VTEX that retrying will not fix."""


class VtexAuthError(VtexError):
    """VTEX refused the app key/token (401) or its role lacks the resource (403)."""


class VtexConnectionError(VtexError):
    """VTEX could not be reached at all (DNS, refused connection, timeout)."""


class VtexRetriesExhaustedError(VtexError):
    """VTEX kept answering 429 or 5xx after every retry."""


class VtexScrollExpiredError(VtexError):
    """A Master Data scroll token expired (20 idle minutes) in the middle of a scroll."""
