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
import json
import logging
import os
import subprocess
import time
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
    "cpf",
    "first_name",
    "last_name",
    "full_name",
    "birth_date",
    "city",
    "postcode",
    "address",
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


def read_records(path: Path, report: ResolveReport) -> list[list[str | None]]:
    """Rows of the CSV in INPUT_COLUMNS order; bad rows go to the report, not an error."""
    if not path.exists():
        raise OmnicanalError(f"input file {path} does not exist")
    rows: list[list[str | None]] = []
    seen: set[tuple[str, str]] = set()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
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
        unknown = [h for h in header if h not in INPUT_COLUMNS]
        if unknown:
            log.warning("ignoring unknown column(s): %s", ", ".join(unknown))
        index = {name: header.index(name) for name in INPUT_COLUMNS if name in header}
        for values in reader:
            line = reader.line_num
            report.rows_read += 1
            if len(values) != len(header):
                report.bad_rows.append(
                    BadRow(line, f"{len(values)} fields where the header has {len(header)}")
                )
                continue
            row = [
                (values[index[name]].strip() or None) if name in index else None
                for name in INPUT_COLUMNS
            ]
            record_id, source = row[0], row[1]
            if not record_id or not source:
                report.bad_rows.append(BadRow(line, "record_id and source must not be empty"))
                continue
            if any(v is not None and (len(v) > MAX_FIELD_LENGTH or "\x00" in v) for v in row):
                report.bad_rows.append(BadRow(line, "a value is too long or holds a NUL"))
                continue
            if (source, record_id) in seen:
                report.bad_rows.append(BadRow(line, f"duplicate record {source}:{record_id}"))
                continue
            seen.add((source, record_id))
            rows.append(row)
    return rows


def load_input(settings: Settings, schema: str, rows: list[list[str | None]]) -> None:
    """COPY the rows into ``<schema>.identity_input`` (CSV text in 1 MB chunks: one C call
    per chunk, not one Python call per value). An empty field is NULL."""
    import io

    from omnicanal.warehouse import connect

    with connect(settings) as conn:
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        table = sql.Identifier(schema, "identity_input")
        conn.execute(sql.SQL("drop table if exists {}").format(table))
        conn.execute(
            sql.SQL("create table {} ({}, input_line bigint)").format(
                table,
                sql.SQL(", ").join(
                    sql.SQL("{} text").format(sql.Identifier(c)) for c in INPUT_COLUMNS
                ),
            )
        )
        copy = sql.SQL("copy {} ({}, input_line) from stdin (format csv)").format(
            table, sql.SQL(", ").join(map(sql.Identifier, INPUT_COLUMNS))
        )
        with conn.cursor() as cur, cur.copy(copy) as writer:
            buffer = io.StringIO()
            out = csv.writer(buffer, lineterminator="\n")
            for start in range(0, len(rows), 10_000):
                out.writerows(
                    [*row, number] for number, row in enumerate(rows[start : start + 10_000], start)
                )
                writer.write(buffer.getvalue())
                buffer.seek(0)
                buffer.truncate()
        conn.commit()


def run_identity_models(
    settings: Settings, schema: str, extra_vars: dict | None = None, target_dir: Path | None = None
) -> None:
    """dbt run of every identity model, on the input table, in ``schema``."""
    from omnicanal.orchestration.dbt import dbt_env, dbt_executable

    variables = {
        "identity_input": f'"{schema}"."identity_input"',
        "identity_schema": schema,
        **(extra_vars or {}),
    }
    target = target_dir or (settings.home / "identity" / "dbt-target")
    command = [
        dbt_executable(),
        "run",
        "--select",
        "path:models/intermediate/identity",
        "--vars",
        json.dumps(variables),
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
        "--quiet",
    ]
    env = {**os.environ, **dbt_env(settings)}
    result = subprocess.run(
        command, env=env, cwd=settings.dbt_project_dir, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise OmnicanalError(
            "dbt failed on the identity models:\n" + (result.stdout + result.stderr)[-4000:]
        )


def _mapping_query(schema: str, columns: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "select {columns} from {input} as i"
        " join {customers} as c on c.record_key = i.source || ':' || i.record_id"
        " order by i.input_line"
    ).format(
        columns=columns,
        input=sql.Identifier(schema, "identity_input"),
        customers=sql.Identifier(schema, "int_identity__record_customers"),
    )


def fetch_mapping(settings: Settings, schema: str) -> list[tuple[str, str, str]]:
    """(source, record_id, customer_id) for every input row, in input order."""
    from omnicanal.warehouse import connect

    query = _mapping_query(schema, sql.SQL("i.source, i.record_id, c.customer_id"))
    with connect(settings) as conn:
        return [tuple(row) for row in conn.execute(query).fetchall()]


def write_mapping(settings: Settings, schema: str, output_path: Path) -> int:
    """Write record_id,customer_id for every input row, in input order (COPY, streamed);
    return the number of distinct customers."""
    from omnicanal.warehouse import connect

    query = _mapping_query(schema, sql.SQL("i.record_id, c.customer_id"))
    with connect(settings) as conn:
        with conn.cursor() as cur, output_path.open("wb") as handle:
            with cur.copy(sql.SQL("copy ({}) to stdout (format csv, header)").format(query)) as out:
                for chunk in out:
                    handle.write(chunk)
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
    rows = read_records(input_path, report)
    load_input(settings, schema, rows)
    report.rows_loaded = len(rows)
    report.seconds_load = time.perf_counter() - start
    variables = dict(extra_vars or {})
    if fuzzy:
        variables["identity_fuzzy"] = {**project_fuzzy_settings(settings), **fuzzy}
    dbt_start = time.perf_counter()
    run_identity_models(settings, schema, variables)
    report.seconds_dbt = time.perf_counter() - dbt_start
    if output_path is not None:
        report.customers = write_mapping(settings, schema, output_path)
    report.seconds_total = time.perf_counter() - start
    return report
