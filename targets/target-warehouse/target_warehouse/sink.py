"""One stream's batches: records in, COPY into a staging table, merge into the table.

The hot path (``add``) does as little Python as possible per record: msgspec checks the
raw record against the stream's schema in C, and the record's JSON text, untouched, is
appended to a binary COPY buffer. Postgres does the rest in one statement per batch:
parse the JSON, cast every column, dedupe keys inside the batch (newest by replication
key, else last arrival) and ``insert … on conflict do update``. If that statement fails
on a value Postgres cannot cast, the batch is bisected with savepoints until the bad
records are isolated; they go to the quarantine table with the reason and the rest
loads.
"""

from __future__ import annotations

import json
import operator
import struct
import time
import typing as t
from datetime import UTC, datetime

import msgspec
import psycopg
from psycopg import errors, sql
from singer_sdk.sinks import Sink

from target_warehouse import tables
from target_warehouse.names import pg_identifier
from target_warehouse.types import BIGINT, JSONB, TEXT, TIMESTAMPTZ, column_type, record_struct

if t.TYPE_CHECKING:
    from target_warehouse.target import TargetWarehouse

PG_EPOCH = 946_684_800  # 2000-01-01 in Unix seconds: binary COPY timestamps count from it
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
NULL_FIELD = struct.pack(">i", -1)
_row_head = struct.Struct(">hiqi").pack  # field count, seq (len + int8), record length
_int8_field = struct.Struct(">iq").pack
_len = struct.Struct(">i").pack

# metadata columns (SDK names); deleted_at and table_version always exist
META_ALWAYS = {"_sdc_deleted_at": TIMESTAMPTZ, "_sdc_table_version": BIGINT}
META_OPTIONAL = {
    "_sdc_extracted_at": TIMESTAMPTZ,
    "_sdc_received_at": TIMESTAMPTZ,
    "_sdc_batched_at": TIMESTAMPTZ,
}
BISECT_ERRORS = (errors.DataError, errors.IntegrityError, errors.CardinalityViolation)


class Batch(t.NamedTuple):
    """Records cut from a sink's buffer, to load in one transaction."""

    sink: WarehouseSink
    first: int  # seq range in the staging table
    last: int
    data: bytes | bytearray  # binary COPY rows
    rows: int
    bad: list[Quarantined]
    dedupe: bool  # a key occurs more than once


class Quarantined(t.NamedTuple):
    seq: int
    raw: bytes
    reason: str
    extracted_at: str | None
    version: int | None


class WarehouseSink(Sink):
    """Loads one stream into ``"<default_target_schema>"."<stream>"``."""

    def __init__(self, target: TargetWarehouse, stream_name: str, schema: dict, key_properties):
        super().__init__(target, stream_name, schema, key_properties)
        cfg = target.config
        self.db_schema: str = cfg.get("default_target_schema") or "public"
        self.table = pg_identifier(stream_name)
        self.batch_max_bytes = int(cfg.get("batch_max_bytes") or 32 * 1024 * 1024)
        self.hard_delete = bool(cfg.get("hard_delete", False))
        self.add_metadata = bool(cfg.get("add_record_metadata", True))
        self.replication_key: str | None = None
        props = dict(self.original_schema.get("properties") or {})
        meta = dict(META_ALWAYS) | (META_OPTIONAL if self.add_metadata else {})
        self.properties = {p: s for p, s in props.items() if pg_identifier(p) not in meta}
        self.column_of = {p: pg_identifier(p) for p in self.properties}
        self.wanted = {self.column_of[p]: column_type(s) for p, s in self.properties.items()}
        for key in self.key_properties:
            self.column_of.setdefault(key, pg_identifier(key))
            self.wanted.setdefault(self.column_of[key], TEXT)
        self.wanted.update(meta)
        self.key_columns = tuple(self.column_of[k] for k in self.key_properties)
        validate = cfg.get("validate_records", True)
        struct_type, key_fields = record_struct(
            stream_name,
            self.properties,
            self.original_schema.get("required") or (),
            self.key_properties,
        )
        self._check = msgspec.json.Decoder(struct_type).decode if validate else None
        # keys seen in the buffer, to skip the in-batch dedupe sort when none repeats
        self._key_of = (
            operator.attrgetter(*key_fields)
            if validate and key_fields and len(key_fields) == len(self.key_properties)
            else None
        )
        self._keys: dict = {}
        self._dup_seqs: list[int] = []
        self._stage = f"_tw_stage_{id(self):x}"
        self._columns: dict[str, str] | None = None  # the table's real columns once ensured
        self._stage_ready = False
        self._buf = bytearray()
        self._rows = 0
        self._seq = 0
        self._first_seq = 1  # seq of the first buffered row
        self._bad: list[Quarantined] = []
        self._mark = (0, 0, 0)  # (seq, bytes, rows) at the last STATE message
        self._last_te: str | None = None
        self._last_te_field = NULL_FIELD
        self.rows_loaded = 0
        self.rows_quarantined = 0

    # The SDK's jsonschema validator is replaced by the msgspec one above.
    def get_validator(self):  # noqa: D102
        return None

    # -- hot path ------------------------------------------------------------------

    def add(self, record: msgspec.Raw, time_extracted: str | None, version: int | None) -> bool:
        """Buffer one record; True when the batch is full."""
        self._seq += 1
        if self._check is not None:
            try:
                parsed = self._check(record)
            except msgspec.ValidationError as exc:
                self._bad.append(
                    Quarantined(self._seq, bytes(record), f"schema: {exc}", time_extracted, version)
                )
                return False
            if self._key_of is not None:
                key = self._key_of(parsed)
                if key in self._keys:
                    self._dup_seqs.append(self._seq)
                self._keys[key] = self._seq
        if time_extracted is None:
            te_field = NULL_FIELD
        elif time_extracted == self._last_te:
            te_field = self._last_te_field
        else:
            encoded = time_extracted.encode()
            te_field = self._last_te_field = _len(len(encoded)) + encoded
            self._last_te = time_extracted
        buf = self._buf
        buf += _row_head(5, 8, self._seq, len(record))
        buf += record
        buf += te_field
        buf += _int8_field(8, int((time.time() - PG_EPOCH) * 1_000_000))
        buf += NULL_FIELD if version is None else _int8_field(8, version)
        self._rows += 1
        return self._rows >= self.max_size or len(buf) >= self.batch_max_bytes

    @property
    def current_size(self) -> int:
        return self._rows + len(self._bad)

    @property
    def pending(self) -> bool:
        return bool(self._rows or self._bad)

    def mark_state(self) -> None:
        """A STATE message arrived: everything buffered so far is covered by it."""
        self._mark = (self._seq, len(self._buf), self._rows)

    @property
    def marked_rows(self) -> int:
        return self._mark[2]

    def process_record(self, record: dict, context: dict) -> None:  # SDK API, unused
        self.add(msgspec.Raw(json.dumps(record).encode()), None, None)

    def process_batch(self, context: dict) -> None:  # the target drives take()/load()
        return None

    # -- batches -----------------------------------------------------------------------

    def take(self, *, up_to_mark: bool) -> Batch | None:
        """Cut the buffered records (all, or those before the last STATE) into a batch."""
        if up_to_mark:
            last_seq, nbytes, nrows = self._mark
        else:
            last_seq, nbytes, nrows = self._seq, len(self._buf), self._rows
        bad = [q for q in self._bad if q.seq <= last_seq]
        if not nrows and not bad:
            return None
        first = self._first_seq
        if nbytes == len(self._buf):
            data, self._buf = self._buf, bytearray()
        else:
            with memoryview(self._buf) as view:
                data = bytes(view[:nbytes])
            del self._buf[:nbytes]
        # dedupe inside the batch only if a key came twice (known when keys were parsed)
        dedupe = self._key_of is None or any(first <= s <= last_seq for s in self._dup_seqs)
        self._dup_seqs = [s for s in self._dup_seqs if s > last_seq]
        if self._keys:
            self._keys = {k: s for k, s in self._keys.items() if s > last_seq}
        self._rows -= nrows
        self._bad = [q for q in self._bad if q.seq > last_seq]
        self._first_seq = last_seq + 1
        mark_seq, mark_bytes, mark_rows = self._mark
        if mark_seq <= last_seq:
            self._mark = (last_seq, 0, 0)
        else:
            self._mark = (mark_seq, mark_bytes - nbytes, mark_rows - nrows)
        return Batch(self, first, last_seq, data, nrows, bad, dedupe)

    def load(self, conn: psycopg.Connection, batch: Batch) -> None:
        """COPY the batch into staging and merge it; runs inside the target's transaction."""
        self._ensure_table(conn)
        if not self._stage_ready:
            conn.execute(
                sql.SQL(
                    "create temp table if not exists {} (seq bigint, rec text, extracted_at text,"
                    " received_at timestamptz, version bigint) on commit delete rows"
                ).format(sql.Identifier(self._stage))
            )
            self._stage_ready = True
        bad = list(batch.bad)
        if batch.rows:
            with conn.cursor() as cur:
                copy_sql = sql.SQL(
                    "copy {} (seq, rec, extracted_at, received_at, version)"
                    " from stdin (format binary)"
                ).format(sql.Identifier(self._stage))
                with cur.copy(copy_sql) as copy:
                    copy.write(COPY_SIGNATURE)
                    view = memoryview(batch.data)
                    for start in range(0, len(view), 8 * 1024 * 1024):
                        copy.write(view[start : start + 8 * 1024 * 1024])
                    view.release()
                    copy.write(COPY_TRAILER)
            refused = self._merge(conn, batch.first, batch.last, dedupe=batch.dedupe)
            bad.extend(refused)
            if self.hard_delete and self.key_columns:
                self._hard_delete(conn, batch.first, batch.last)
            self.rows_loaded += batch.rows - len(refused)
        if bad:
            self._quarantine(conn, bad)
        self.rows_quarantined += len(bad)
        self.tally_record_written(batch.rows)

    def flush_failed(self) -> None:
        """The transaction rolled back: the table and staging may not be as we thought."""
        self._columns = None
        self._stage_ready = False

    def _ensure_table(self, conn: psycopg.Connection) -> None:
        if self._columns is None:
            tables.ensure_schema(conn, self.db_schema)
            self._columns = tables.ensure_table(
                conn, self.db_schema, self.table, self.wanted, self.key_columns
            )

    # -- SQL ---------------------------------------------------------------------------

    def _value_sql(self, prop: str, column: str) -> sql.Composable:
        kind = self._columns[column]
        key = sql.Literal(prop)
        if kind == JSONB:
            return sql.SQL("nullif(r->{}, 'null'::jsonb)").format(key)
        if kind == TEXT:
            return sql.SQL("(r->>{})").format(key)
        if kind == "json":
            return sql.SQL("nullif(r->{}, 'null'::jsonb)::json").format(key)
        return sql.SQL("(r->>{})::{}").format(key, sql.SQL(kind))

    def _select_items(self) -> list[tuple[str, sql.Composable]]:
        items = [(self.column_of[p], self._value_sql(p, self.column_of[p])) for p in self.column_of]
        items.append(("_sdc_deleted_at", sql.SQL("(r->>'_sdc_deleted_at')::timestamptz")))
        items.append(("_sdc_table_version", sql.SQL("version")))
        if self.add_metadata:
            items.append(("_sdc_extracted_at", sql.SQL("extracted_at::timestamptz")))
            items.append(("_sdc_received_at", sql.SQL("received_at")))
            items.append(("_sdc_batched_at", sql.SQL("now()")))
        return items

    def _merge_sql(self, *, dedupe: bool = True) -> sql.Composable:
        items = self._select_items()
        names = [sql.Identifier(c) for c, _ in items]
        inner = sql.SQL(", ").join(
            sql.SQL("{} as {}").format(expr, sql.Identifier(c)) for c, expr in items
        )
        source = sql.SQL(
            # the lateral "offset 0" parses each record once; inlined, Postgres would
            # parse it again for every column it extracts (10x slower)
            "select s.seq as _tw_seq, {inner} from {stage} s"
            " cross join lateral (select s.rec::jsonb as r offset 0) j"
            " where s.seq between %(lo)s and %(hi)s"
        ).format(inner=inner, stage=sql.Identifier(self._stage))
        target = sql.Identifier(self.db_schema, self.table)
        cols = sql.SQL(", ").join(names)
        if not self.key_columns:
            where = sql.SQL("")
            if self.hard_delete:
                where = sql.SQL(" where _sdc_deleted_at is null")
            return sql.SQL("insert into {} ({}) select {} from ({}) x{}").format(
                target, cols, cols, source, where
            )
        keys = sql.SQL(", ").join(map(sql.Identifier, self.key_columns))
        order = [keys]
        rk = self.replication_key and self.column_of.get(self.replication_key)
        if rk:
            order.append(sql.SQL("{} desc nulls last").format(sql.Identifier(rk)))
        order.append(sql.SQL("_tw_seq desc"))
        update_parts = [
            sql.SQL("{} = excluded.{}").format(n, n)
            for c, n in zip([c for c, _ in items], names, strict=True)
            if c not in self.key_columns
        ]
        if not update_parts:
            action = sql.SQL("do nothing")
        else:
            updates = sql.SQL(", ").join(update_parts)
            action = sql.SQL("do update set {}").format(updates)
            if rk:
                action += sql.SQL(
                    " where t.{rk} is null or excluded.{rk} is null or excluded.{rk} >= t.{rk}"
                ).format(rk=sql.Identifier(rk))
        if not dedupe:
            return sql.SQL(
                "insert into {} as t ({}) select {} from ({}) x on conflict ({}) {}"
            ).format(target, cols, cols, source, keys, action)
        return sql.SQL(
            "insert into {} as t ({}) select distinct on ({}) {} from ({}) x order by {}"
            " on conflict ({}) {}"
        ).format(target, cols, keys, cols, source, sql.SQL(", ").join(order), keys, action)

    def _merge(
        self, conn: psycopg.Connection, lo: int, hi: int, *, dedupe: bool = True
    ) -> list[Quarantined]:
        """Merge staged rows lo..hi; bisect around rows Postgres refuses."""
        statement = self._merge_sql(dedupe=dedupe and bool(self.key_columns))
        try:
            with conn.transaction():
                conn.execute(statement, {"lo": lo, "hi": hi})
            return []
        except errors.CardinalityViolation:
            if not dedupe:  # keys Python saw as different are equal once cast: sort them
                return self._merge(conn, lo, hi, dedupe=True)
            raise
        except BISECT_ERRORS as exc:
            first_error = exc
        seqs = [
            r[0]
            for r in conn.execute(
                sql.SQL("select seq from {} where seq between %s and %s order by seq").format(
                    sql.Identifier(self._stage)
                ),
                (lo, hi),
            )
        ]
        if len(seqs) == 1:
            return [self._explain(conn, seqs[0], first_error)]
        mid = seqs[len(seqs) // 2 - 1]
        return self._merge(conn, lo, mid, dedupe=dedupe) + self._merge(
            conn, mid + 1, hi, dedupe=dedupe
        )

    def _explain(self, conn: psycopg.Connection, seq: int, exc: Exception) -> Quarantined:
        """Find which column of staged row ``seq`` Postgres cannot take, as the reason."""
        stage = sql.Identifier(self._stage)
        rec, extracted_at, version = conn.execute(
            sql.SQL("select rec, extracted_at, version from {} where seq = %s").format(stage),
            (seq,),
        ).fetchone()
        reason = f"cast: {_message(exc)}"
        probes = [("record", sql.SQL("rec::jsonb"))]
        probes += [
            (f"property {p!r}", self._value_sql(p, self.column_of[p])) for p in self.column_of
        ]
        probes += [("_sdc_deleted_at", sql.SQL("(r->>'_sdc_deleted_at')::timestamptz"))]
        for what, expr in probes:
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL(
                            "select {} from (select rec::jsonb as r, rec from {} where seq = %s) s"
                        ).format(expr, stage)
                        if what != "record"
                        else sql.SQL("select {} from {} where seq = %s").format(expr, stage),
                        (seq,),
                    )
            except BISECT_ERRORS as probe_exc:
                reason = f"cast: {what}: {_message(probe_exc)}"
                break
        return Quarantined(seq, rec.encode(), reason, extracted_at, version)

    def _hard_delete(self, conn: psycopg.Connection, lo: int, hi: int) -> None:
        keys = sql.SQL(", ").join(map(sql.Identifier, self.key_columns))
        key_values = sql.SQL(", ").join(
            self._value_sql(p, self.column_of[p]) for p in self.key_properties
        )
        conn.execute(
            sql.SQL(
                "delete from {} where ({}) in (select {} from {} s cross join lateral"
                " (select s.rec::jsonb as r offset 0) j where s.seq between %s and %s"
                " and r->>'_sdc_deleted_at' is not null)"
            ).format(
                sql.Identifier(self.db_schema, self.table),
                keys,
                key_values,
                sql.Identifier(self._stage),
            ),
            (lo, hi),
        )

    def _quarantine(self, conn: psycopg.Connection, rows: list[Quarantined]) -> None:
        values = []
        for q in rows:
            text = q.raw.decode("utf-8", "replace")
            as_json = None if "\\u0000" in text else _json_or_none(text)
            values.append(
                (
                    self.stream_name,
                    text if as_json is not None else None,
                    None if as_json is not None else text.replace("\x00", "\\0"),
                    q.reason,
                    _timestamp_or_none(q.extracted_at),
                    q.version,
                )
            )
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "insert into {} (stream, record, record_text, reason, _sdc_extracted_at,"
                    " _sdc_table_version) values (%s, %s::jsonb, %s, %s, %s, %s)"
                ).format(sql.Identifier(self.db_schema, tables.QUARANTINE_TABLE)),
                values,
            )

    def activate_version(self, new_version: int) -> None:  # driven by the target
        raise NotImplementedError

    def activate(self, conn: psycopg.Connection, version: int) -> None:
        """Rows of older versions were not in the latest full-table sync: delete them.

        A soft delete is a change of the row in this batch, so it also stamps
        ``_sdc_batched_at``: models incremental on that stamp (staging) read the row
        again and see it deleted, as they see a record that carries ``_sdc_deleted_at``."""
        self._ensure_table(conn)
        target = sql.Identifier(self.db_schema, self.table)
        old = sql.SQL("(_sdc_table_version is null or _sdc_table_version < %s)")
        if self.hard_delete:
            conn.execute(sql.SQL("delete from {} where {}").format(target, old), (version,))
        else:
            stamp = sql.SQL(", _sdc_batched_at = now()" if self.add_metadata else "")
            conn.execute(
                sql.SQL(
                    "update {} set _sdc_deleted_at = now(){} where {} and _sdc_deleted_at is null"
                ).format(target, stamp, old),
                (version,),
            )


def _message(exc: Exception) -> str:
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return primary or str(exc).splitlines()[0]


def _json_or_none(text: str) -> object | None:
    try:
        json.loads(text)
    except ValueError:
        return None
    return True


def _timestamp_or_none(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
