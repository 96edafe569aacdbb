"""Errors the tap raises when Instagram (or the way to it) fails for good.

Each message is written for the person running the pipeline: what went wrong and what
to do. The command line prints it without a traceback (``TapInstagram.known_failures``).
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class InstagramError(FatalAPIError):
    """A failure talking to the Graph API that retrying will not fix."""


class InstagramAuthError(InstagramError):
    """The access token is missing, invalid, expired (code 190) or lacks a permission."""


class InstagramConnectionError(InstagramError):
    """The Graph API could not be reached at all (DNS, refused connection, timeout)."""


class InstagramRetriesExhaustedError(InstagramError):
    """The Graph API kept throttling or failing after every retry."""
