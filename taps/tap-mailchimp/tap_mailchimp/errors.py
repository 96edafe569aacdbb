"""Errors the tap raises when Mailchimp (or the way to it) fails for good.

Each message is written for the person running the pipeline: what went wrong, and
which setting to look at. The command line prints it without a traceback (see
``TapMailchimp.known_failures``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class MailchimpError(FatalAPIError):
    """A failure talking to Mailchimp that retrying will not fix."""


class MailchimpAuthError(MailchimpError):
    """Mailchimp refused the API key (401) or its access (403)."""


class MailchimpConnectionError(MailchimpError):
    """Mailchimp could not be reached at all (DNS, refused connection, timeout)."""


class MailchimpRetriesExhaustedError(MailchimpError):
    """Mailchimp kept answering 429 or 5xx after every retry."""
