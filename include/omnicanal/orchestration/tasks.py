"""Task callables for the DAGs: each one is a CLI verb's function, logged and returned."""

from __future__ import annotations

import logging

from omnicanal.settings import get_settings

log = logging.getLogger(__name__)


def warehouse_up() -> str:
    from omnicanal import warehouse

    return warehouse.up(get_settings()).redacted()


def extract(source: str) -> dict:
    from omnicanal.extract import run_extract

    report = run_extract(get_settings(), source)
    log.info("extract %s: %s rows now in raw tables (%.1fs)", source, report.rows, report.seconds)
    return {"source": report.source, "rows": report.rows, "quarantined": report.quarantined}


def sync(name: str) -> dict:
    """``omnicanal sync run NAME``; the run's row of ``sync_runs`` (times, counts,
    requests and rate, the destination's stats, the error) goes to the task log, also
    when the run fails."""
    from omnicanal.activation.definitions import get_definition
    from omnicanal.activation.engine import run_sync

    settings = get_settings()
    sync_name = get_definition(settings.dbt_project_dir, name).name
    before = _last_run(settings, sync_name)
    try:
        report = run_sync(settings, name)
    except Exception:
        after = _last_run(settings, sync_name)
        if after is not None and after != before:  # the run started: show its row
            _log_run(settings, after)
        raise
    _log_run(settings, report.run_id)
    if report.failed:
        log.warning("sync %s: %d rows failed: %s", name, report.failed, report.errors[:5])
    return report.as_dict()


def _log_run(settings, run_id: int | None) -> None:
    import json

    from omnicanal.activation.ledger import describe_run, run_row
    from omnicanal.warehouse import connect

    if run_id is None:  # nothing to send: no run row
        return
    with connect(settings) as conn:
        run = run_row(conn, run_id)
    if run is not None:
        log.info("sync %s %s", run["sync_name"], describe_run(run))
        log.info("sync_runs row: %s", json.dumps(run, default=str, sort_keys=True))


def _last_run(settings, sync_name: str) -> int | None:
    from omnicanal.activation.ledger import last_run_id
    from omnicanal.warehouse import connect

    try:
        with connect(settings) as conn:
            return last_run_id(conn, sync_name)
    except Exception as exc:  # the run's own error is the one that matters
        log.warning("sync %s: could not read its last run: %s", sync_name, exc)
        return None
