"""target-warehouse: a fast, lossless Singer target for Postgres.

The target owns one connection and drives every checkpoint itself: all streams' pending
batches are COPYed and merged in one transaction, and only after it commits is the
latest STATE printed. Batches are cut at the last STATE message whenever possible, so
the state printed describes exactly what is committed: a crash at any moment followed
by a rerun from that state loses nothing and (even for append-only streams) loads
nothing twice. With ``state_table`` the state is also upserted into a table inside the
same transaction as the records, so even a crash between COMMIT and printing leaves a
state (in the table) that matches what is committed. See the README for the details.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import msgspec
import psycopg
from singer_sdk import typing as th
from singer_sdk.exceptions import (
    ConfigValidationError,
    InvalidInputLine,
    RecordsWithoutSchemaException,
)
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.target_base import Target

from target_warehouse import tables
from target_warehouse.reader import Envelope, RawRecordReader
from target_warehouse.sink import Batch, WarehouseSink

DEFAULT_BATCH_ROWS = 100_000
DEFAULT_BATCH_BYTES = 32 * 1024 * 1024
#: Test hook, not a setting: ``TARGET_WAREHOUSE_TEST_CRASH_AFTER_COMMIT=N`` makes the
#: process SIGKILL itself right after its Nth data COMMIT, before that STATE is printed,
#: so tests can hit the window between the two. Never set it in production.
CRASH_AFTER_COMMIT_ENV = "TARGET_WAREHOUSE_TEST_CRASH_AFTER_COMMIT"


class TargetWarehouse(Target):
    """Loads Singer streams into Postgres with COPY + merge; see the README."""

    name = "target-warehouse"
    default_sink_class = WarehouseSink
    message_reader_class = RawRecordReader
    capabilities: t.ClassVar = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STRUCTURED_LOGGING,
        PluginCapabilities.ACTIVATE_VERSION,
        TargetCapabilities.SOFT_DELETE,
        TargetCapabilities.HARD_DELETE,
        TargetCapabilities.TARGET_SCHEMA,
        TargetCapabilities.VALIDATE_RECORDS,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property("host", th.StringType, default="127.0.0.1", description="Postgres host."),
        th.Property("port", th.IntegerType, default=5432, description="Postgres port."),
        th.Property("user", th.StringType, default="postgres", description="Postgres user."),
        th.Property("password", th.StringType, secret=True, description="Postgres password."),
        th.Property(
            "database", th.StringType, default="postgres", description="Database to load into."
        ),
        th.Property(
            "url",
            th.StringType,
            secret=True,
            description=(
                "A libpq connection URL (postgresql://user:pass@host:port/db); when set it "
                "replaces host, port, user, password and database."
            ),
        ),
        th.Property(
            "default_target_schema",
            th.StringType,
            default="public",
            description="Schema that receives every stream's table and the _quarantine table.",
        ),
        th.Property(
            "batch_size_rows",
            th.IntegerType,
            default=DEFAULT_BATCH_ROWS,
            description="A stream's batch is loaded when it holds this many records.",
        ),
        th.Property(
            "batch_max_bytes",
            th.IntegerType,
            default=DEFAULT_BATCH_BYTES,
            description="...or when its records take this many bytes of JSON (bounds memory).",
        ),
        th.Property(
            "add_record_metadata",
            th.BooleanType,
            default=True,
            description=(
                "Add _sdc_extracted_at, _sdc_received_at and _sdc_batched_at columns "
                "(_sdc_deleted_at and _sdc_table_version are always there)."
            ),
        ),
        th.Property(
            "hard_delete",
            th.BooleanType,
            default=False,
            description=(
                "Delete rows whose record has _sdc_deleted_at, and rows an ACTIVATE_VERSION "
                "retires, instead of setting _sdc_deleted_at (soft delete)."
            ),
        ),
        th.Property(
            "activate_version",
            th.BooleanType,
            default=True,
            description="Handle ACTIVATE_VERSION messages (full-table streams); else ignore them.",
        ),
        th.Property(
            "validate_records",
            th.BooleanType,
            default=True,
            description=(
                "Check each record against its stream's schema (compiled, msgspec) and "
                "quarantine those that break it. Values Postgres cannot cast are "
                "quarantined either way."
            ),
        ),
        th.Property(
            "max_checkpoint_seconds",
            th.NumberType,
            default=60,
            description="Load and emit STATE at least this often while records arrive.",
        ),
        th.Property(
            "state_table",
            th.StringType,
            description=(
                "Also store each STATE in this table ('schema.table', or 'table' in "
                "default_target_schema), upserted in the same transaction that commits "
                "the records it covers, before the STATE line is printed. An orchestrator "
                "that resumes from this table gets no loss and no duplicates even if the "
                "target dies between COMMIT and printing. Created if missing: "
                "(<state_id_column> text primary key, state jsonb not null, updated_at "
                "timestamptz not null default now()). Requires state_id."
            ),
        ),
        th.Property(
            "state_id",
            th.StringType,
            description=(
                "The row of state_table this target's STATE goes to (e.g. the source or "
                "tap name), so one table holds the state of several pipelines."
            ),
        ),
        th.Property(
            "state_id_column",
            th.StringType,
            default="state_id",
            description="Name of state_table's key column, which holds state_id.",
        ),
    ).to_dict()

    def __init__(self, *args, **kwargs) -> None:
        try:
            super().__init__(
                *args,
                setup_mapper=False,
                **{k: v for k, v in kwargs.items() if k != "setup_mapper"},
            )
        except ConfigValidationError as exc:
            # The SDK validates the schema inside its __init__; say which plugin and which
            # settings are wrong (through its public exception, not its private method).
            detail = "; ".join(exc.errors) or str(exc)
            msg = f"target-warehouse config is invalid: {detail}"
            raise ConfigValidationError(msg, errors=exc.errors, schema=exc.schema) from None
        self._conn: psycopg.Connection | None = None
        self._bookmarks: dict[str, list[str]] = {}
        self._emitted_state: t.Any = None
        self._last_checkpoint = time.monotonic()
        self._check_every = 0
        self._inflight: Future | None = None
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loader")
        self._check_config()
        self._state_rel = self._state_table()
        self._state_table_ready = False
        self._stored_state: t.Any = None
        self._commits = 0
        crash = os.environ.get(CRASH_AFTER_COMMIT_ENV, "").strip()
        self._crash_after = int(crash) if crash else 0

    # -- config and connection ---------------------------------------------------------

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's built-in settings, minus ``load_method``: the load method follows
        the stream (merge by key properties, append-only without them)."""
        super().append_builtin_config(config_jsonschema)
        config_jsonschema["properties"].pop("load_method", None)

    def _check_config(self) -> None:
        cfg = self.config
        for name in ("batch_size_rows", "batch_max_bytes", "port"):
            value = cfg.get(name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                msg = f"setting {name!r} must be a positive integer (got {value!r})"
                raise ValueError(msg)
        schema = cfg.get("default_target_schema")
        if schema is not None and not str(schema).strip():
            msg = "setting 'default_target_schema' must not be empty"
            raise ValueError(msg)
        table = cfg.get("state_table")
        if table is not None:
            if not str(table).strip() or any(not p for p in str(table).split(".", 1)):
                msg = f"setting 'state_table' must be 'schema.table' or 'table' (got {table!r})"
                raise ValueError(msg)
            if not cfg.get("state_id"):
                msg = "setting 'state_id' is required when 'state_table' is set"
                raise ValueError(msg)
            if not str(cfg.get("state_id_column") or "state_id").strip():
                msg = "setting 'state_id_column' must not be empty"
                raise ValueError(msg)

    def _state_table(self) -> tuple[str, str] | None:
        """(schema, table) of ``state_table``, or None when the setting is off."""
        table = self.config.get("state_table")
        if not table:
            return None
        if "." in table:
            schema, name = table.split(".", 1)
            return schema, name
        return self.config.get("default_target_schema") or "public", table

    @property
    def connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            cfg = self.config
            try:
                if cfg.get("url"):
                    conn = psycopg.connect(cfg["url"], application_name="target-warehouse")
                else:
                    conn = psycopg.connect(
                        host=cfg.get("host", "127.0.0.1"),
                        port=cfg.get("port", 5432),
                        user=cfg.get("user", "postgres"),
                        password=cfg.get("password"),
                        dbname=cfg.get("database", "postgres"),
                        application_name="target-warehouse",
                    )
            except psycopg.OperationalError as exc:
                where = "url" if cfg.get("url") else "host/port/user/password/database"
                msg = f"cannot connect to Postgres with the settings {where}: {exc}"
                raise RuntimeError(msg) from exc
            conn.execute("set time zone 'UTC'")
            conn.execute("set temp_buffers = '256MB'")  # staging stays in memory
            conn.execute("set work_mem = '256MB'")  # the in-batch dedupe sorts in memory
            conn.execute("set jit = off")  # compiling costs more than it saves here
            conn.commit()
            self._conn = conn
        return self._conn

    # -- messages ------------------------------------------------------------------------

    def _process_schema_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"stream", "schema"})
        schema = message_dict["schema"]
        if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
            msg = f"SCHEMA for stream {message_dict['stream']!r} has no 'properties' object"
            raise InvalidInputLine(msg)
        stream = message_dict["stream"]
        keys = list(message_dict.get("key_properties") or [])
        bookmarks = list(message_dict.get("bookmark_properties") or [])
        sink = self._sinks_active.get(stream)
        if sink is not None:
            if (
                sink.original_schema == schema
                and list(sink.key_properties) == keys
                and self._bookmarks.get(stream) == bookmarks
            ):
                return
            self.checkpoint(everything=True, wait=True)  # what came under the old schema first
            sink.clean_up()
            del self._sinks_active[stream]
        self._bookmarks[stream] = bookmarks
        sink = self.add_sink(stream, schema, keys)
        sink.replication_key = bookmarks[0] if bookmarks else None
        # a declared stream has its table even before (or without) a record: the models
        # that read it find it empty, not missing (a WhatsApp account nobody has opted
        # out of yet still has raw_whatsapp.user_preferences). The loader thread may be
        # committing a batch on the same connection: its transaction ends first
        self._wait()
        conn = self.connection
        with conn.transaction():
            sink._ensure_table(conn)

    def _process_record_message(self, message: Envelope | dict) -> None:  # type: ignore[override]
        if isinstance(message, dict):  # someone fed us a parsed message
            message = Envelope(
                type="RECORD",
                stream=message["stream"],
                record=msgspec.Raw(json.dumps(message["record"]).encode()),
                time_extracted=message.get("time_extracted"),
                version=message.get("version"),
            )
        sink = self._sinks_active.get(message.stream)
        if sink is None:
            msg = (
                f"A record for stream {message.stream!r} was encountered before a "
                "corresponding schema."
            )
            raise RecordsWithoutSchemaException(msg)
        if sink.add(message.record, message.time_extracted, message.version):
            self.checkpoint(full=sink)
            return
        self._check_every += 1
        if self._check_every >= 10_000:
            self._check_every = 0
            if time.monotonic() - self._last_checkpoint > self.config.get(
                "max_checkpoint_seconds", 60
            ):
                self.checkpoint()

    def _process_state_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"value"})
        self._latest_state = message_dict["value"]
        pending = False
        for sink in self._sinks_active.values():
            sink.mark_state()
            pending |= sink.pending
        if not pending:  # nothing unloaded comes before it
            self._wait()
            self._emit_state(json.loads(json.dumps(self._latest_state)))

    def _process_activate_version_message(self, message_dict: dict) -> None:
        stream = message_dict["stream"]
        sink = self._sinks_active.get(stream)
        if sink is None:
            msg = f"ACTIVATE_VERSION for stream {stream!r} came before its schema"
            raise RecordsWithoutSchemaException(msg)
        cfg = self.config
        if not (
            cfg.get("activate_version", True) and cfg.get("process_activate_version_messages", True)
        ):
            self.logger.warning("Ignoring ACTIVATE_VERSION for %s (activate_version off)", stream)
            return
        self.checkpoint(everything=True, wait=True)
        conn = self.connection
        with conn.transaction():
            sink.activate(conn, int(message_dict["version"]))

    def _process_batch_message(self, message_dict: dict) -> None:
        msg = "BATCH messages are not supported by target-warehouse; send RECORD messages"
        raise NotImplementedError(msg)

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint(
        self, *, full: WarehouseSink | None = None, everything: bool = False, wait: bool = False
    ) -> None:
        """Hand pending batches to the loader thread; it commits them, then prints the state.

        Normally only records before the latest STATE are cut (the rest stay buffered),
        so the printed state is exact. When a full sink has too few records before that
        STATE, everything is cut, to keep memory bounded. One load runs at a time, while
        this thread goes on reading and validating the next batch.
        """
        up_to_mark = not everything
        if full is not None and full.marked_rows < full.current_size // 2:
            up_to_mark = False
        batches = [b for s in self._sinks_active.values() if (b := s.take(up_to_mark=up_to_mark))]
        state = json.loads(json.dumps(self._latest_state)) if self._latest_state else None
        self._wait()
        if batches:
            self._inflight = self._loader.submit(self._load, batches, state)
        else:
            self._emit_state(state)
        self._last_checkpoint = time.monotonic()
        if wait:
            self._wait()

    def _load(self, batches: list[Batch], state: dict | None) -> None:
        conn = self.connection
        with self._state_transaction(conn):
            for batch in batches:
                batch.sink.load(conn, batch)
            self._store_state(conn, state)
        self._committed()
        self._emit_state(state)

    @contextmanager
    def _state_transaction(self, conn: psycopg.Connection) -> t.Iterator[None]:
        """A transaction that may store the state; on rollback, forget what it stored."""
        stored, ready = self._stored_state, self._state_table_ready
        try:
            with conn.transaction():
                yield
        except BaseException:
            self._stored_state, self._state_table_ready = stored, ready
            raise

    def _store_state(self, conn: psycopg.Connection, state: t.Any) -> None:
        """Upsert ``state`` into ``state_table`` (if set) inside the caller's transaction."""
        if self._state_rel is None or state is None or state == self._stored_state:
            return
        schema, table = self._state_rel
        id_column = self.config.get("state_id_column") or "state_id"
        if not self._state_table_ready:
            tables.ensure_state_table(conn, schema, table, id_column)
            self._state_table_ready = True
        tables.upsert_state(
            conn, schema, table, id_column, str(self.config["state_id"]), json.dumps(state)
        )
        self._stored_state = state

    def _committed(self) -> None:
        """A data transaction committed; the test hook may kill us before its STATE."""
        self._commits += 1
        if self._crash_after and self._commits >= self._crash_after:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def _wait(self) -> None:
        """Wait for the load in flight; its failure is ours."""
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            inflight.result()

    def _emit_state(self, state: t.Any = None) -> None:
        """Print ``state``; with ``state_table``, it is stored first (committed already
        when it came with a load, else in a transaction of its own: every record before
        it is committed by then)."""
        if state is None or state == self._emitted_state:
            return
        if self._state_rel is not None and state != self._stored_state:
            conn = self.connection
            with self._state_transaction(conn):
                self._store_state(conn, state)
        self._emitted_state = state
        sys.stdout.write(json.dumps(state) + "\n")
        sys.stdout.flush()

    def process_endofpipe(self) -> None:
        self.checkpoint(everything=True, wait=True)
        self._loader.shutdown()
        for sink in self._sinks_active.values():
            self.logger.info(
                "stream %s: %d rows loaded, %d quarantined",
                sink.stream_name,
                sink.rows_loaded,
                sink.rows_quarantined,
            )
            sink.clean_up()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _handle_termination(self, signum, frame) -> None:  # pragma: no cover
        self.logger.info("Received signal %d: loading what is buffered, then stopping", signum)
        try:
            self.checkpoint(everything=True, wait=True)
        finally:
            super(Target, self)._handle_termination(signum, frame)


if __name__ == "__main__":
    TargetWarehouse.cli()
