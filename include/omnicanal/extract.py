"""Run a source's Singer tap into the warehouse loader, with state kept in the warehouse.

``tap-<platform> | target`` as two processes joined by a pipe, the Singer way. The
loader (target-warehouse, with its ``state_table`` setting) upserts each STATE into
``omnicanal_meta.singer_state`` in the same transaction that commits the records the
state covers, and only then prints it; the next run resumes from that table. So a
crash at any point, even between the COMMIT and the STATE line reaching us, leaves a
state that describes exactly what is committed. The printed states are only logged.
Keeping state in the warehouse (not on a worker's disk) means any Airflow worker can
run the next extract.

Config files hold secrets, so they are written 0600 into a private temporary folder
and removed when the run ends; they never reach a log.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from omnicanal.channels import CHANNELS, sources
from omnicanal.channels.channel import Channel
from omnicanal.config import Settings
from omnicanal.errors import ExtractError
from omnicanal.privacy.register import withhold_after_load
from omnicanal.warehouse import connect, url

log = logging.getLogger(__name__)

STATE_SCHEMA = "omnicanal_meta"
STATE_TABLE = "singer_state"
#: The state table's key column (target-warehouse's ``state_id_column``).
STATE_ID_COLUMN = "source"


#: Our own loader (targets/target-warehouse): COPY + merge, schema evolution, quarantine.
LOADER = "target-warehouse"
QUARANTINE_TABLE = "_quarantine"


def get_source(name: str) -> Channel:
    """The channel called ``name``, if it has a source (a tap) to extract."""
    channel = CHANNELS.get(name)
    if channel is None or channel.source is None:
        known = ", ".join(c.name for c in sources())
        raise ExtractError(f"unknown source {name!r}; omnicanal knows: {known}")
    return channel


def _executable(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    raise ExtractError(
        f"{name} is not installed in this environment ({candidate} is missing); run "
        "`make setup` to install the locked workspace"
    )


def _loader_config(settings: Settings, channel: Channel) -> dict:
    return {
        **url(settings).connection_params(),
        "default_target_schema": channel.raw_schema,
        "add_record_metadata": True,
        "activate_version": True,
        "hard_delete": False,
        # the loader commits each state with its records, into the table read_state reads
        "state_table": f"{STATE_SCHEMA}.{STATE_TABLE}",
        "state_id": channel.name,
        "state_id_column": STATE_ID_COLUMN,
    }


def _ensure_state_table(conn) -> None:
    conn.execute("select pg_advisory_xact_lock(hashtext('omnicanal_meta_ddl'))")
    conn.execute(
        f"""create schema if not exists {STATE_SCHEMA};
        create table if not exists {STATE_SCHEMA}.{STATE_TABLE} (
            {STATE_ID_COLUMN}  text primary key,
            state       jsonb not null,
            updated_at  timestamptz not null default now()
        )"""
    )


def read_state(settings: Settings, source: str) -> dict | None:
    """The state the loader committed last for ``source`` (None: start from scratch)."""
    with connect(settings) as conn:
        _ensure_state_table(conn)
        row = conn.execute(
            f"select state from {STATE_SCHEMA}.{STATE_TABLE} where {STATE_ID_COLUMN} = %s",
            (source,),
        ).fetchone()
    return row[0] if row else None


def reset_state(settings: Settings, source: str) -> None:
    """Forget ``source``'s state: its next extract is a full one."""
    with connect(settings) as conn:
        _ensure_state_table(conn)
        conn.execute(
            f"delete from {STATE_SCHEMA}.{STATE_TABLE} where {STATE_ID_COLUMN} = %s", (source,)
        )


@dataclass
class ExtractReport:
    source: str
    rows: dict[str, int] = field(default_factory=dict)
    state: dict | None = None
    seconds: float = 0.0
    #: Records the loader set aside in raw_<source>._quarantine during this run.
    quarantined: int = 0


def _drain(stream, sink: list[str], prefix: str) -> None:
    for line in iter(stream.readline, ""):
        line = line.rstrip("\n")
        sink.append(line)
        if len(sink) > 400:
            del sink[:200]
        log.debug("%s %s", prefix, line)


def quarantine_count(settings: Settings, channel: Channel) -> int:
    """Records of ``channel`` the loader quarantined so far (0 if none ever were)."""
    with connect(settings) as conn:
        exists = conn.execute(
            "select 1 from information_schema.tables where table_schema = %s and table_name = %s",
            (channel.raw_schema, QUARANTINE_TABLE),
        ).fetchone()
        if not exists:
            return 0
        return conn.execute(
            sql.SQL("select count(*) from {}.{}").format(
                sql.Identifier(channel.raw_schema), sql.Identifier(QUARANTINE_TABLE)
            )
        ).fetchone()[0]


def raw_counts(settings: Settings, channel: Channel) -> dict[str, int]:
    counts: dict[str, int] = {}
    with connect(settings) as conn:
        for stream in channel.source.streams:
            exists = conn.execute(
                "select 1 from information_schema.tables "
                "where table_schema = %s and table_name = %s",
                (channel.raw_schema, stream),
            ).fetchone()
            if exists:
                counts[stream] = conn.execute(
                    sql.SQL("select count(*) from {}.{}").format(
                        sql.Identifier(channel.raw_schema), sql.Identifier(stream)
                    )
                ).fetchone()[0]
    return counts


def run_extract(
    settings: Settings, source_name: str, *, full_refresh: bool = False
) -> ExtractReport:
    """Extract ``source_name`` into ``raw_<source>``; incremental from the saved state."""

    started = time.monotonic()
    channel = get_source(source_name)
    source = channel.source
    tap, loader = _executable(source.tap), _executable(LOADER)
    if full_refresh:
        reset_state(settings, channel.name)
    state = read_state(settings, channel.name)
    quarantined_before = quarantine_count(settings, channel)
    with tempfile.TemporaryDirectory(prefix=f"omnicanal-{channel.name}-") as tmp:
        os.chmod(tmp, 0o700)
        files = {
            "tap.json": source.tap_config(settings),
            "loader.json": _loader_config(settings, channel),
        }
        if state:
            files["state.json"] = state
        for fname, content in files.items():
            path = Path(tmp, fname)
            path.write_text(json.dumps(content))
            path.chmod(0o600)
        tap_cmd = [tap, "--config", str(Path(tmp, "tap.json"))]
        if state:
            tap_cmd += ["--state", str(Path(tmp, "state.json"))]
        log.info("extracting %s with %s into %s", channel.name, source.tap, channel.raw_schema)
        tap_err: list[str] = []
        loader_err: list[str] = []
        tap_proc = subprocess.Popen(
            tap_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        loader_proc = subprocess.Popen(
            [loader, "--config", str(Path(tmp, "loader.json"))],
            stdin=tap_proc.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        tap_proc.stdout.close()  # the loader owns the pipe now
        threads = [
            threading.Thread(target=_drain, args=(tap_proc.stderr, tap_err, source.tap)),
            threading.Thread(target=_drain, args=(loader_proc.stderr, loader_err, LOADER)),
        ]
        for thread in threads:
            thread.start()
        printed = None  # the loader has stored it already; only logged here
        for line in loader_proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(message, dict) and message.get("type") == "STATE":
                message = message.get("value")
            if isinstance(message, dict):
                printed = message
                log.debug("%s committed state %s", LOADER, line[:500])
        tap_rc, loader_rc = tap_proc.wait(), loader_proc.wait()
        for thread in threads:
            thread.join()
    # A loader that stops closes the pipe, and the tap then dies of it: the loader's
    # words are the reason, so they come first.
    if loader_rc != 0:
        raise ExtractError(
            f"{LOADER} failed (exit {loader_rc}) loading {channel.name}; nothing after the "
            f"last saved state was kept, a rerun resumes from there:\n" + _last_words(loader_err)
        )
    if tap_rc != 0:
        raise ExtractError(f"{source.tap} failed (exit {tap_rc}):\n" + _last_words(tap_err))
    # before dbt reads them: drop what the platform serves again of people erased (LGPD)
    withhold_after_load(settings, channel.name)
    report = ExtractReport(
        source=channel.name,
        rows=raw_counts(settings, channel),
        state=read_state(settings, channel.name),
        seconds=time.monotonic() - started,
        quarantined=quarantine_count(settings, channel) - quarantined_before,
    )
    if printed is not None and printed != report.state:
        log.warning(
            "%s printed state %s last but %s.%s holds %s; the next run resumes from the table",
            LOADER,
            json.dumps(printed)[:500],
            STATE_SCHEMA,
            STATE_TABLE,
            json.dumps(report.state)[:500],
        )
    if report.quarantined:
        log.warning(
            "%d %s record(s) broke their schema and were quarantined with the reason in "
            "%s.%s; the rest loaded",
            report.quarantined,
            channel.name,
            channel.raw_schema,
            QUARANTINE_TABLE,
        )
    return report


def _last_words(lines: list[str], keep: int = 6) -> str:
    """The end of a process's log: where a Singer component says why it stopped.

    Its ERROR/CRITICAL lines, last ones first in importance (the final one is the
    reason); the log prefix (time, level, logger) is dropped for readability.
    """
    errors = [line for line in lines if "| ERROR" in line or "| CRITICAL" in line]
    if not errors:
        tail = lines[-keep:]
    else:
        tail = [line.rsplit(" | ", 1)[-1] for line in errors[-keep:]]
    return "\n".join(tail) or "(it printed nothing)"
