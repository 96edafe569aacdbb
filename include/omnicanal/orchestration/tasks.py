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
    from omnicanal.activation.engine import run_sync

    report = run_sync(get_settings(), name)
    if report.failed:
        log.warning("sync %s: %d rows failed: %s", name, report.failed, report.errors[:5])
    return report.as_dict()
