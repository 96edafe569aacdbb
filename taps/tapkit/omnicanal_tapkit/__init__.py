"""What omnicanal's Singer taps share, built on singer-sdk's public hooks only.

- :mod:`~omnicanal_tapkit.waits`: ``Retry-After`` (seconds or HTTP date) and capped
  exponential backoff with jitter;
- :mod:`~omnicanal_tapkit.failures`: retry log lines and final errors a person can act
  on, raised as the tap's own exception classes;
- :mod:`~omnicanal_tapkit.redact`: endpoints named without their query, credentials
  scrubbed from any other text;
- :mod:`~omnicanal_tapkit.streams`: :class:`PlatformRetries`, all of the above on a
  ``RESTStream``'s backoff hooks;
- :mod:`~omnicanal_tapkit.tap`: :class:`PlatformTap`, cross-setting config checks and a
  clean CLI exit for known failures;
- :mod:`~omnicanal_tapkit.settings`: the ``user_agent``, ``request_timeout``,
  ``max_retries`` and ``full_sync_every_days`` settings, described once;
- :mod:`~omnicanal_tapkit.pages`: a page's JSON body decoded by msgspec and its records
  read without building a JSONPath parser (``json_body``, ``records_at``);
- :mod:`~omnicanal_tapkit.prefetch`: :class:`PrefetchedPages`, the next page asked for
  while the records of this one are processed;
- :mod:`~omnicanal_tapkit.conform`: :class:`ConformedRecords`, records conformed to the
  schema by a function compiled once per schema instead of the SDK's per-record walk;
- :mod:`~omnicanal_tapkit.startup`: ``run_tap_cli``, a tap's console script started
  without the libraries singer-sdk's imports pull in and no tap uses;
- :mod:`~omnicanal_tapkit.selection`: singer-sdk's per-record walk against the
  catalog's selection skipped when the catalog deselects nothing (installed by
  :class:`ConformedRecords`);
- :mod:`~omnicanal_tapkit.full_sync`: :class:`RetiresMissingOnFullSync`, deleted records
  retired by a full sync. These two are the uses of singer-sdk internals, kept here.
"""

from __future__ import annotations

import importlib
import typing as t

#: Each public name and the module that holds it; imported when first asked for, so
#: that :mod:`omnicanal_tapkit.startup` can run before anything imports singer-sdk.
_EXPORTS: dict[str, str] = {
    "ConformedRecords": "conform",
    "SchemaConformer": "conform",
    "PlatformFailures": "failures",
    "backoff_log_handler": "failures",
    "network_reason": "failures",
    "readable_failures": "failures",
    "RetiresMissingOnFullSync": "full_sync",
    "full_sync_due": "full_sync",
    "redact": "redact",
    "request_secrets": "redact",
    "scrub": "redact",
    "url_without_query": "redact",
    "json_body": "pages",
    "records_at": "pages",
    "full_sync_setting": "settings",
    "request_settings": "settings",
    "PlatformRetries": "streams",
    "PrefetchedPages": "prefetch",
    "PlatformTap": "tap",
    "base_url_errors": "tap",
    "exponential_backoff": "waits",
    "retry_after_seconds": "waits",
    "retry_waits": "waits",
}

if t.TYPE_CHECKING:
    from omnicanal_tapkit.conform import ConformedRecords, SchemaConformer
    from omnicanal_tapkit.failures import (
        PlatformFailures,
        backoff_log_handler,
        network_reason,
        readable_failures,
    )
    from omnicanal_tapkit.full_sync import RetiresMissingOnFullSync, full_sync_due
    from omnicanal_tapkit.pages import json_body, records_at
    from omnicanal_tapkit.prefetch import PrefetchedPages
    from omnicanal_tapkit.redact import redact, request_secrets, scrub, url_without_query
    from omnicanal_tapkit.settings import full_sync_setting, request_settings
    from omnicanal_tapkit.streams import PlatformRetries
    from omnicanal_tapkit.tap import PlatformTap, base_url_errors
    from omnicanal_tapkit.waits import exponential_backoff, retry_after_seconds, retry_waits


def __getattr__(name: str) -> t.Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ConformedRecords",
    "PlatformFailures",
    "PlatformRetries",
    "PlatformTap",
    "PrefetchedPages",
    "RetiresMissingOnFullSync",
    "SchemaConformer",
    "backoff_log_handler",
    "base_url_errors",
    "exponential_backoff",
    "full_sync_due",
    "full_sync_setting",
    "json_body",
    "network_reason",
    "readable_failures",
    "records_at",
    "redact",
    "request_secrets",
    "request_settings",
    "retry_after_seconds",
    "retry_waits",
    "scrub",
    "url_without_query",
]
