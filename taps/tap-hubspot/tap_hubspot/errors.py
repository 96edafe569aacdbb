"""Errors the tap raises when HubSpot (or the way to it) fails for good.

Each message is written for the person running the pipeline: what went wrong, and
which setting to look at. The command line prints it without a traceback (see
``TapHubSpot.known_failures``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class HubSpotError(FatalAPIError):
    """A failure talking to HubSpot that retrying will not fix."""


class HubSpotAuthError(HubSpotError):
    """HubSpot refused the private-app token (401: unknown or expired) or its scopes (403)."""


class HubSpotDailyLimitError(HubSpotError):
    """The portal's daily API allowance is used up: retrying before midnight is pointless."""


class HubSpotConnectionError(HubSpotError):
    """HubSpot could not be reached at all (DNS, refused connection, timeout)."""


class HubSpotRetriesExhaustedError(HubSpotError):
    """HubSpot kept answering 429 or 5xx after every retry."""
