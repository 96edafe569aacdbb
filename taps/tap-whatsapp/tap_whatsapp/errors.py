"""Errors the tap raises when the webhook receiver (or the way to it) fails for good.

Each message says what went wrong and which setting to look at; the command line prints
it without a traceback (``TapWhatsApp.known_failures``).
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class ReceiverError(FatalAPIError):
    """A failure reading the webhook receiver that retrying will not fix."""


class ReceiverAuthError(ReceiverError):
    """The receiver refused the read token (401)."""


class ReceiverConnectionError(ReceiverError):
    """The receiver could not be reached at all (refused connection, DNS, timeout)."""


class ReceiverRetriesExhaustedError(ReceiverError):
    """The receiver kept answering 429 or 5xx after every retry."""
