"""Errors the tap raises when Zendesk (or the way to it) fails for good.

Each message is written for the person running the pipeline: what went wrong, and
which setting to look at. The command line prints it without a traceback (see
``TapZendesk.known_failures``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class ZendeskError(FatalAPIError):
    """A failure talking to Zendesk that retrying will not fix."""


class ZendeskAuthError(ZendeskError):
    """Zendesk refused the credentials (401) or the agent's permissions (403)."""


class ZendeskConnectionError(ZendeskError):
    """Zendesk could not be reached at all (DNS, refused connection, timeout)."""


class ZendeskRetriesExhaustedError(ZendeskError):
    """Zendesk kept answering 429 or 5xx after every retry."""
