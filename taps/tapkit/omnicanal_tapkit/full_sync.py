"""Deleted records: a full sync lets the loader retire what the platform no longer has.

singer-sdk sends ``ACTIVATE_VERSION`` for FULL_TABLE streams only; omnicanal's streams
are incremental. This is the one place where the taps reach into singer-sdk's internals
(the stream's table version and its ACTIVATE_VERSION writer: no public hook exists in
0.54); tests/taps/test_tapkit.py breaks loudly if a new SDK moves them.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class RetiresMissingOnFullSync:
    """Lets the loader retire the records a full sync no longer found: they were deleted.

    The platform's list drops a deleted record without a trace an incremental sync could
    read, so only a full sync can notice. When the stream starts without a bookmark it
    reads every record (updated since ``start_date``), stamps each with a table version
    (the run's start, epoch milliseconds) and, once the last one is out, sends
    ``ACTIVATE_VERSION``: the loader marks the rows of older versions deleted
    (``_sdc_deleted_at``) or removes them, as it is configured. An incremental or
    resumed sync sends none: it does not see every record. Mix it in before the stream's
    base class.
    """

    def sync(self, context: Context | None = None) -> None:
        full = self.selected and not self.stream_state.get("replication_key_value")  # type: ignore[attr-defined]
        if full:
            self._stream_version = self._tap.initialized_at  # type: ignore[attr-defined]
        super().sync(context)  # type: ignore[misc]
        if full:
            self._write_activate_version_message(self._stream_version)  # type: ignore[attr-defined]
