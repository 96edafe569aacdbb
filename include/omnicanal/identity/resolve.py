"""``omnicanal identity resolve``: the warehouse's identity models on anyone's CSV.

The CSV is loaded into ``<schema>.identity_input`` (COPY), dbt builds the identity
models in that same schema with the var ``identity_input`` pointing at it (so the
pipeline's own identity tables in ``intermediate`` are never touched), and the mapping
``record_id,customer_id`` is read back. customer_ids persist in the schema, so running
the same file again gives the same ids, and a file with more records keeps the ids of
the records it shares with the last run.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from omnicanal.config import Settings
from omnicanal.errors import OmnicanalError

log = logging.getLogger(__name__)

INPUT_COLUMNS = [
    "record_id",
    "source",
    "email",
    "phone",
    "wa_id",
    "cpf",
    "first_name",
    "last_name",
    "full_name",
    "birth_date",
    "city",
    "postcode",
    "address",
    "instagram",
]
REQUIRED_COLUMNS = ("record_id", "source")
MAX_FIELD_LENGTH = 1000


@dataclass
class BadRow:
    line: int
    reason: str


@dataclass
class ResolveReport:
    rows_read: int = 0
    rows_loaded: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    customers: int = 0
    seconds_load: float = 0.0
    seconds_dbt: float = 0.0
    seconds_total: float = 0.0

    def as_dict(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "bad_rows": len(self.bad_rows),
            "customers": self.customers,
            "seconds_load": round(self.seconds_load, 2),
            "seconds_dbt": round(self.seconds_dbt, 2),
            "seconds_total": round(self.seconds_total, 2),
        }


def _read_header(path: Path, reader) -> tuple[list[str], list[int]]:
    """The header's known columns and their positions; a header we cannot use is an
    error naming what is wrong."""
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise OmnicanalError(f"{path} is empty: it needs a header row") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise OmnicanalError(
            f"{path} lacks the column(s) {', '.join(missing)}; the header must name "
            f"record_id, source and any of {', '.join(INPUT_COLUMNS[2:])}"
        )
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise OmnicanalError(f"{path}: the header names {', '.join(twice)} more than once")
    unknown = [h for h in header if h not in INPUT_COLUMNS]
    if unknown:
        log.warning("ignoring unknown column(s): %s", ", ".join(unknown))
    return header, [i for i, h in enumerate(header) if h in INPUT_COLUMNS]


@contextmanager
def _no_cyclic_gc():
    """Millions of small lists and nothing cyclic: without this, the cyclic garbage
    collector walks the growing heap again and again (more than half the read time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Lines:
    """The file's lines, for csv.reader, keeping those each record was read from: a good
    record goes to COPY as the text it was written in, not re-serialised."""

    def __init__(self, handle) -> None:
        self._next = handle.__next__
        self.taken: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._next()
        self.taken.append(line)
        return line


def _good_rows(
    lines: _Lines, reader, header: list[str], keep: list[int], report: ResolveReport
) -> Iterator[str]:
    """The CSV's good records as CSV text (the known columns, untrimmed: the models trim),
    in chunks; bad rows go to the report. Only what must be per row is done per row
    (field count, required values, length, NUL, duplicates)."""
    width, keep_all = len(header), len(keep) == len(header)
    id_at, source_at = header.index("record_id"), header.index("source")
    seen: set[tuple[str, str]] = set()
    chunk: list[str] = []
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    taken = lines.taken
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as error:  # e.g. a field over csv's size limit: that row only
            taken.clear()
            report.rows_read += 1
            report.bad_rows.append(BadRow(reader.line_num, f"not valid CSV: {error}"))
            continue
        raw = "".join(taken) if len(taken) > 1 else taken[0]
        taken.clear()
        report.rows_read += 1
        if len(values) != width:
            reason = f"{len(values)} fields where the header has {width}"
            report.bad_rows.append(BadRow(reader.line_num, reason))
            continue
        record_id, source = values[id_at].strip(), values[source_at].strip()
        if not record_id or not source:
            reason = "record_id and source must not be empty"
            report.bad_rows.append(BadRow(reader.line_num, reason))
            continue
        if (len(raw) > MAX_FIELD_LENGTH and max(map(len, values)) > MAX_FIELD_LENGTH) or (
            "\x00" in raw
        ):
            reason = f"a value is over {MAX_FIELD_LENGTH} characters or holds a NUL"
            report.bad_rows.append(BadRow(reader.line_num, reason))
            continue
        key = (source, record_id)
        if key in seen:
            reason = f"duplicate record {source}:{record_id}"
            report.bad_rows.append(BadRow(reader.line_num, reason))
            continue
        seen.add(key)
        report.rows_loaded += 1
        if keep_all and raw.endswith("\n"):
            chunk.append(raw)
        else:  # unknown columns to leave out, or a last line without its newline
            out.writerow([values[i] for i in keep])
            chunk.append(buffer.getvalue())
            buffer.seek(0)
            buffer.truncate()
        if len(chunk) == 20_000:
            yield "".join(chunk)
            chunk.clear()
    if chunk:
        yield "".join(chunk)


def load_input(settings: Settings, schema: str, path: Path, report: ResolveReport) -> None:
    """Read the CSV and COPY its good rows into ``<schema>.identity_input`` (every
    INPUT_COLUMNS column, text; those the CSV lacks stay null; input_line numbers them
    in file order) as they are read: Postgres takes one chunk while Python checks the
    next. An empty field is NULL."""
    from omnicanal.warehouse import connect

    if not path.exists():
        raise OmnicanalError(f"input file {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        lines = _Lines(handle)
        reader = csv.reader(lines)
        header, keep = _read_header(path, reader)
        lines.taken.clear()
        with connect(settings) as conn:
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            table = sql.Identifier(schema, "identity_input")
            conn.execute(sql.SQL("drop table if exists {}").format(table))
            conn.execute(
                # read whole, twice, then dropped by the next run: autovacuum would only
                # compete with that run for the CPU
                sql.SQL(
                    "create table {} ({}, input_line bigint generated always as identity)"
                    " with (autovacuum_enabled = false)"
                ).format(
                    table,
                    sql.SQL(", ").join(
                        sql.SQL("{} text").format(sql.Identifier(c)) for c in INPUT_COLUMNS
                    ),
                )
            )
            copy = sql.SQL("copy {} ({}) from stdin (format csv)").format(
                table, sql.SQL(", ").join(sql.Identifier(header[i]) for i in keep)
            )
            with conn.cursor() as cur, cur.copy(copy) as writer, _no_cyclic_gc():
                for text in _good_rows(lines, reader, header, keep, report):
                    writer.write(text)
            conn.commit()


class DbtProcess:
    """A dbt process started before its command is known (module dbt_worker): it imports
    dbt, about three seconds, while the CSV loads on the other core; ``run`` then gives
    it the command and waits. ``close`` ends it if it never got one."""

    def __init__(self, settings: Settings) -> None:
        from omnicanal.orchestration.dbt import dbt_env

        self._proc = subprocess.Popen(
            [sys.executable, "-m", "omnicanal.identity.dbt_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **dbt_env(settings)},
            cwd=settings.dbt_project_dir,
        )

    def run(self, args: list[str]) -> None:
        output, _ = self._proc.communicate(json.dumps(args) + "\n")
        if self._proc.returncode != 0:
            raise OmnicanalError("dbt failed on the identity models:\n" + output[-4000:])

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.communicate("")  # an empty command: the worker exits


def run_identity_models(
    settings: Settings,
    schema: str,
    extra_vars: dict | None = None,
    target_dir: Path | None = None,
    dbt: DbtProcess | None = None,
) -> None:
    """dbt build of the identity seeds and every identity model (their tests left to the
    project's own runs), on the input table, in ``schema`` (in ``dbt`` when one was
    started ahead)."""
    variables = {
        "identity_input": f'"{schema}"."identity_input"',
        "identity_schema": schema,
        **(extra_vars or {}),
    }
    target = target_dir or (settings.home / "identity" / "dbt-target")
    # build, not run: the identity seeds (nicknames, fake identifiers) load into the same
    # schema in the same dbt invocation (a second one would cost dbt's start-up again)
    args = [
        "build",
        "--select",
        "path:seeds/identity",
        "path:models/intermediate/identity",
        "--exclude-resource-type",
        "test",
        "unit_test",
        "--vars",
        json.dumps(variables),
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
        "--quiet",
    ]
    process = dbt or DbtProcess(settings)
    try:
        process.run(args)
    finally:
        process.close()


def _mapping_query(schema: str, columns: sql.Composable, ordered: bool = True) -> sql.Composed:
    return sql.SQL(
        "select {columns} from {input} as i"
        " join {customers} as c on c.record_key = trim(i.source) || ':' || trim(i.record_id)"
        + (" order by i.input_line" if ordered else "")
    ).format(
        columns=columns,
        input=sql.Identifier(schema, "identity_input"),
        customers=sql.Identifier(schema, "int_identity__record_customers"),
    )


def fetch_mapping(settings: Settings, schema: str) -> list[tuple[str, str, str]]:
    """(source, record_id, customer_id) for every input row, in input order."""
    from omnicanal.warehouse import connect

    query = _mapping_query(schema, sql.SQL("trim(i.source), trim(i.record_id), c.customer_id"))
    with connect(settings) as conn:
        return [tuple(row) for row in conn.execute(query).fetchall()]


def write_mapping(settings: Settings, schema: str, output_path: Path) -> int:
    """Write record_id,customer_id for every input row, in input order; return the number
    of distinct customers. Postgres writes the CSV lines and hands them over in blocks of
    10,000 (a row at a time costs a Python call per record)."""
    from omnicanal.warehouse import connect

    block = 10_000
    line = (
        "case when trim(i.record_id) ~ '[\",\\r\\n]'"
        " then '\"' || replace(trim(i.record_id), '\"', '\"\"') || '\"'"
        " else trim(i.record_id) end || ',' || c.customer_id || chr(10)"
    )
    query = sql.SQL(
        "select string_agg(line, '' order by input_line) from ({rows}) as lines"
        " group by input_line / {block} order by input_line / {block}"
    ).format(
        rows=_mapping_query(schema, sql.SQL(line + " as line, i.input_line"), ordered=False),
        block=sql.Literal(block),
    )
    with connect(settings) as conn:
        with conn.cursor() as cur, output_path.open("w", encoding="utf-8", newline="") as handle:
            handle.write("record_id,customer_id\n")
            for (text,) in cur.execute(query):
                handle.write(text)
        count = sql.SQL("select count(distinct c.customer_id) from {} as c").format(
            sql.Identifier(schema, "int_identity__record_customers")
        )
        return conn.execute(count).fetchone()[0]


def project_fuzzy_settings(settings: Settings) -> dict:
    """The project's identity_fuzzy var, as dbt_project.yml declares it."""
    import yaml

    project = yaml.safe_load((settings.dbt_project_dir / "dbt_project.yml").read_text())
    return dict(project["vars"]["identity_fuzzy"])


def parse_fuzzy_overrides(settings: Settings, items: list[str]) -> dict:
    """``KEY=VALUE`` items (VALUE in YAML) over the keys of identity_fuzzy; a bad item is
    an error naming it and, for an unknown key, the keys there are."""
    import yaml

    known = project_fuzzy_settings(settings)
    overrides: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OmnicanalError(f"--fuzzy {item!r}: expected KEY=VALUE, e.g. threshold_weight=5")
        if key not in known:
            raise OmnicanalError(
                f"--fuzzy {item!r}: identity_fuzzy has no setting {key!r}; "
                f"it has {', '.join(sorted(known))}"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise OmnicanalError(f"--fuzzy {item!r}: not valid YAML ({error})") from None
        expected = type(known[key])
        if (
            known[key] is not None
            and not isinstance(value, expected)
            and not (expected is float and isinstance(value, int))
        ):
            raise OmnicanalError(
                f"--fuzzy {item!r}: {key} takes a {expected.__name__}, got {type(value).__name__}"
            )
        overrides[key] = value
    return overrides


def resolve_file(
    settings: Settings,
    input_path: Path,
    output_path: Path | None,
    schema: str = "identity_cli",
    fuzzy: dict | None = None,
    extra_vars: dict | None = None,
) -> ResolveReport:
    """Load, resolve and (when output_path is given) write record_id,customer_id.
    ``fuzzy`` overrides keys of the project's identity_fuzzy var for this run."""
    report = ResolveReport()
    start = time.perf_counter()
    dbt = DbtProcess(settings)  # dbt imports while the CSV loads
    try:
        load_input(settings, schema, input_path, report)
        report.seconds_load = time.perf_counter() - start
        variables = dict(extra_vars or {})
        if fuzzy:
            variables["identity_fuzzy"] = {**project_fuzzy_settings(settings), **fuzzy}
        dbt_start = time.perf_counter()
        run_identity_models(settings, schema, variables, dbt=dbt)
        report.seconds_dbt = time.perf_counter() - dbt_start
    finally:
        dbt.close()
    if output_path is not None:
        report.customers = write_mapping(settings, schema, output_path)
    report.seconds_total = time.perf_counter() - start
    return report
