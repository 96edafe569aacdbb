"""The settings of how a tap asks, described once for every tap's ``--about``.

:class:`~omnicanal_tapkit.streams.PlatformRetries` reads ``request_timeout`` and
``max_retries``; their schema, defaults and wording live here beside the constants that
code uses, so the documentation and the behaviour cannot drift apart tap by tap. Each
tap says only what is its own: its default User-Agent and what it retries.
"""

from __future__ import annotations

from singer_sdk import typing as th

from omnicanal_tapkit.full_sync import DEFAULT_FULL_SYNC_DAYS, FULL_SYNC_SETTING

#: Seconds to wait for one HTTP answer.
DEFAULT_REQUEST_TIMEOUT = 60
#: Retries after the first attempt.
DEFAULT_MAX_RETRIES = 5


def request_settings(
    *,
    user_agent: str,
    retried_after: str,
    user_agent_note: str = "",
) -> tuple[th.Property, th.Property, th.Property]:
    """``user_agent``, ``request_timeout`` and ``max_retries``, for ``th.PropertiesList``.

    ``user_agent`` is the tap's default header; ``user_agent_note`` may add what the
    platform asks of it. ``retried_after`` completes "How many times a request is
    retried after …", e.g. "HTTP 429 (waiting `Retry-After`), HTTP 5xx, a timeout or a
    network error (exponential backoff from 1 s)".
    """
    note = f" {user_agent_note}" if user_agent_note else ""
    return (
        th.Property(
            "user_agent",
            th.StringType,
            description=f"User-Agent header for every request. Defaults to `{user_agent}`.{note}",
        ),
        th.Property(
            "request_timeout",
            th.IntegerType(minimum=1),
            default=DEFAULT_REQUEST_TIMEOUT,
            description=(
                "Seconds to wait for each HTTP answer before treating it as failed "
                "(and retrying it)."
            ),
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0),
            default=DEFAULT_MAX_RETRIES,
            description=(
                f"How many times a request is retried after {retried_after}, before the sync fails."
            ),
        ),
    )


def full_sync_setting() -> th.Property:
    """``full_sync_every_days``, for taps whose streams retire deleted records
    (:class:`~omnicanal_tapkit.full_sync.RetiresMissingOnFullSync`)."""
    return th.Property(
        FULL_SYNC_SETTING,
        th.NumberType(minimum=0),
        default=DEFAULT_FULL_SYNC_DAYS,
        description=(
            "Days between full syncs of the streams whose deleted records only a full sync "
            "can notice (it reads every record and retires the missing ones); incremental "
            "syncs run in between. 0: only when there is no bookmark (a full refresh)."
        ),
    )
