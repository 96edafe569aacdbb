"""Deleted records: a full sync lets the loader retire what the platform no longer has.

singer-sdk sends ``ACTIVATE_VERSION`` for FULL_TABLE streams only; omnicanal's streams
are incremental. This is the one place where the taps reach into singer-sdk's internals
(the stream's table version, its ACTIVATE_VERSION and STATE writers: no public hook
exists in 0.54); tests/taps/test_tapkit.py breaks loudly if a new SDK moves them.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class RetiresMissingOnFullSync:
    """Lets the loader retire the records a full sync no longer found: they were deleted.

    The platform's list drops a deleted record without a trace an incremental sync could
    read, so only a full sync can notice. A full sync reads every record (updated since
    ``start_date``), stamps each with a table version (the run's start, epoch
    milliseconds) and, once the last one is out, sends ``ACTIVATE_VERSION``: the loader
    marks the rows of older versions deleted (``_sdc_deleted_at``) or removes them, as it
    is configured. Mix it in before the stream's base class.

    A stream syncs in full when it has no bookmark, when its last full sync is older than
    ``full_sync_every_days`` (a tap setting, see :data:`FULL_SYNC_SETTING`; so deletions
    are noticed without anyone asking for a full refresh), and when a full sync did not
    get to its ``ACTIVATE_VERSION``. That last case is what the stream state's
    ``full_sync_pending`` (the version being synced) is for: the SDK saves the final
    bookmark *before* the tap can send ``ACTIVATE_VERSION``, so a run killed in between
    would otherwise resume incrementally and never retire what the platform deleted. A
    full sync that was cut short is redone from the start (rows of the cut one are
    simply stamped again), never activated half-read. Once activated, the state records
    ``last_full_sync`` (the version) and drops the pending mark.
    """

    def sync(self, context: Context | None = None) -> None:
        state = self.stream_state  # type: ignore[attr-defined]
        version = self._tap.initialized_at  # type: ignore[attr-defined]
        full = self.selected and full_sync_due(state, version, self.config)  # type: ignore[attr-defined]
        if full:
            if state.get(BOOKMARK):
                self.logger.info(  # type: ignore[attr-defined]
                    "%s: full sync (%s), to notice deleted records",
                    self.name,  # type: ignore[attr-defined]
                    "the last one was cut short" if PENDING in state else "it is due",
                )
            for key in (BOOKMARK, "replication_key", "progress_markers"):
                state.pop(key, None)
            state[PENDING] = version
            self._stream_version = version
        super().sync(context)  # type: ignore[misc]
        if full:
            self._write_activate_version_message(version)  # type: ignore[attr-defined]
            state.pop(PENDING, None)
            state[LAST_FULL_SYNC] = version
            self.state_manager.is_flushed = False  # type: ignore[attr-defined]
            self._write_state_message()  # type: ignore[attr-defined]


#: Stream-state keys: the SDK's bookmark, the version of a full sync not yet activated,
#: and the version (epoch milliseconds) of the last activated one.
BOOKMARK = "replication_key_value"
PENDING = "full_sync_pending"
LAST_FULL_SYNC = "last_full_sync"
#: The tap setting (days between full syncs of the streams that retire deletions).
FULL_SYNC_SETTING = "full_sync_every_days"
DEFAULT_FULL_SYNC_DAYS = 7
DAY_MS = 86_400_000


def full_sync_due(state: t.Mapping[str, t.Any], now_ms: int, config: t.Mapping) -> bool:
    """Whether a stream with this state syncs in full at ``now_ms`` (see the class)."""
    if not state.get(BOOKMARK) or PENDING in state:
        return True
    days = config.get(FULL_SYNC_SETTING)
    if days is None:
        days = DEFAULT_FULL_SYNC_DAYS
    if not days:  # 0: only when there is no bookmark (a full refresh)
        return False
    last = state.get(LAST_FULL_SYNC)
    # a bookmark from before full syncs were recorded: one full sync, then on schedule
    return last is None or now_ms - int(last) >= float(days) * DAY_MS
