"""dbt benchmark: the full ``dbt build`` against an incremental run after 1% new data.

    .venv/bin/python bench/dbt/run.py --people 10000          # a quick check
    .venv/bin/python bench/dbt/run.py                         # 100k people (issue 14)
    .venv/bin/python bench/dbt/run.py --people 100000 --rebuild   # extract the world again

The world (``generate_world(people, seed, as_of)``, every channel) is served by the
sandbox and extracted by the real taps (``run_extract``, WhatsApp through the webhook
receiver; the emulations' rate limits off) into a database that is kept as a template,
``omnicanal_benchdbt_<people>_<seed>``: extracting 100k people takes long, so later runs
copy it (``create database .. template``); ``--rebuild`` extracts it again.

Each run works on a copy of it:

1. the newest ``--new-share`` (1%) of the raw rows are held back: the rows created
   after one cut-off time common to every raw table with a creation time (chosen so
   that that share of their rows comes after it), and the last share of each stream
   numbered by a sequence (WhatsApp's events, numbered by the webhook receiver: the
   replication key of its bookmark). Tables with neither (order lines, associations)
   stay whole, and rows created before the cut-off stay in their last version (the
   earlier one is not known). What is left is the warehouse before the newest records
   came; the held rows are what the next extract brings;
2. the anchor: ``dbt build`` from scratch (no models yet), timed;
3. the held rows go back into their raw tables, as an extract appends them (stamped
   as loaded now: ``_sdc_batched_at`` ...);
4. ours: ``dbt build`` again (incremental models take only what changed), timed;
5. the check: ``dbt build --full-refresh`` on the same data (timed too, for the record),
   and every mart (schemas marts and activation) and identity's clusters compared,
   after the incremental run against after the full refresh: the rows found in one and
   not the other (as multisets of row hashes) and the columns whose values differ,
   without the columns a run stamps (``built_at`` ...) and with each ``customer_id``
   replaced by its cluster's smallest record key (an id is a label; the clusters are
   what must agree).

Every dbt run is the pipeline's build: the environment of the Airflow dbt task group
(``pipeline_env``: no unit tests; ``--unit-tests`` runs them too) and the profile's threads
(``--threads`` sets them). It gets ``as_of`` = the world's as_of, and its
``run_results.json`` timings are kept: the slowest models of the incremental run are
printed. Goal (issue 14): the incremental run takes <= 10% of the full build. Timed runs
hold /tmp/omnicanal-bench.lock.
The last line is one JSON object with the figures, the ratio, the goal and goal_met.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # bench/
sys.path.insert(0, str(PROJECT / "tests" / "dbt"))
sys.path.insert(0, str(PROJECT / "tests"))  # tests/dbt/marts_world imports sync_pipeline

from benchlock import bench_lock  # noqa: E402
from extract.run import unlimited_options  # noqa: E402
from marts_world import MartsWarehouse, sandbox_warehouse  # noqa: E402

#: Issue 14's goal: incremental run / full build.
GOAL_RATIO = 0.10
#: The world's "now": fixed, so a template and every run on it agree.
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_WAREHOUSE = "postgresql://postgres@127.0.0.1:5432/postgres"
#: Where held-back rows wait, in the run's database.
HELD = "bench_new_rows"
#: The engagement emulations' limits off (the extract bench's unlimited_options has the
#: commerce ones): their own options, None for no limit.
UNLIMITED_ENGAGEMENT = {
    "instagram": {"app_calls_per_hour": None, "account_calls_per_hour": None},
    "hubspot": {"burst": None, "daily": None, "search_per_second": None},
    "zendesk": {"rate_limit": None, "export_rate_limit": None},
    "mailchimp": {"max_requests_per_second": None},
}
#: The loader's stamps of when a row arrived: a new row arrives now.
LOAD_STAMPS = {"_sdc_extracted_at", "_sdc_received_at", "_sdc_batched_at"}
#: Schemas whose tables are compared, incremental run against full refresh.
MART_SCHEMAS = ("marts", "activation")
#: Columns a run stamps with its own time: not part of what a mart says.
RUN_STAMPED = {"built_at", "assigned_at", "changed_at", "customer_id_created_at"}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def db_url(admin_url: str, dbname: str) -> str:
    from omnicanal.config import WarehouseURL

    admin = WarehouseURL.parse(admin_url)
    return WarehouseURL(admin.host, admin.port, admin.user, admin.password, dbname).url()


def database_exists(admin_url: str, dbname: str) -> bool:
    with psycopg.connect(admin_url) as conn:
        found = conn.execute("select 1 from pg_database where datname = %s", (dbname,))
        return found.fetchone() is not None


def copy_database(admin_url: str, source: str, target: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(target))
        )
        conn.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(target), sql.Identifier(source)
            )
        )


def drop_database(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
        )


def platforms() -> list[str]:
    from omnicanal.channels import sources

    return [c.name for c in sources() if c.emulation is not None]


def build_template(admin_url: str, template: str, people: int, seed: int, workdir: Path) -> None:
    """Generate the world, extract every channel through its tap, keep it as ``template``."""
    from omnicanal.sandbox.world import generate_world

    started = time.monotonic()
    world = generate_world(people, seed, AS_OF)
    say(f"world of {people} people ({time.monotonic() - started:.0f}s)")
    for name, piece in world.slices.items():
        say(f"  {name}: {piece.describe()}")
    os.environ.setdefault("OMNICANAL_HOME", str(workdir / "home"))
    # this bench times dbt: the emulations' rate limits off (at 100k people Instagram's
    # 4,800 calls an hour alone would take hours)
    options = unlimited_options() | UNLIMITED_ENGAGEMENT
    with sandbox_warehouse(admin_url, workdir, world, platforms(), options) as built:
        say(f"extracted every channel ({time.monotonic() - started:.0f}s)")
        dbname = psycopg.conninfo.conninfo_to_dict(built.url)["dbname"]
        copy_database(admin_url, dbname, template)
    say(f"kept as template database {template}")


# --- 1% new data --------------------------------------------------------------------------


#: A raw table's creation time: the first of these columns it has (a time).
CREATED = (
    "created_at",
    "creationDate",
    "createdIn",
    "created_time",
    "create_time",
    "date_created",
    "timestamp_signup",
    "timestamp",
)


def new_row_columns(conn: psycopg.Connection) -> tuple[dict, dict]:
    """(raw schema, table) -> the column that says when a row came into being: its
    creation time, or, for a stream without one, a replication key that is a sequence
    (WhatsApp's events, numbered by the webhook receiver; from the taps' bookmarks)."""
    columns: dict[tuple[str, str], dict[str, str]] = {}
    for schema, table, column, data_type in conn.execute(
        "select table_schema, table_name, column_name, data_type"
        " from information_schema.columns where table_schema like 'raw\\_%%'"
        " and table_name <> '_quarantine'"
    ):
        columns.setdefault((schema, table), {})[column] = data_type
    created, sequences = {}, {}
    for st, types in columns.items():
        found = [c for c in CREATED if types.get(c, "").startswith("timestamp")]
        if found:
            created[st] = found[0]
    for source, state in conn.execute("select source, state from omnicanal_meta.singer_state"):
        for stream, bookmark in (state.get("bookmarks") or {}).items():
            key = bookmark.get("replication_key")
            for partition in bookmark.get("partitions") or []:
                key = key or partition.get("replication_key")
            st = (f"raw_{source}", stream)
            if st not in created and columns.get(st, {}).get(key) in ("bigint", "integer"):
                sequences[st] = key
    return created, sequences


def hold_back_newest(url: str, share: float) -> dict[str, Any]:
    """Move the newest ``share`` of the raw rows into schema ``HELD``: the rows created
    after one cut-off time common to every table with a creation time, and the last
    ``share`` of each stream numbered by a sequence. Rows created before the cut-off and
    changed after it stay as they are (their earlier version is not known): the new data
    is new records, not changes to old ones, which would make them arrive late."""
    with psycopg.connect(url) as conn:
        created, sequences = new_row_columns(conn)
        timed = {st: sql.Identifier(column) for st, column in created.items()}
        union = sql.SQL(" union all ").join(
            sql.SQL("select {} as stamp from {}").format(column, sql.Identifier(*st))
            for st, column in timed.items()
        )
        percentile = sql.SQL("select percentile_disc(%s) within group (order by {}) from {}")
        cutoff, _ = conn.execute(
            sql.SQL(
                "select percentile_disc(%s) within group (order by stamp), count(*) from ({}) s"
            ).format(union),
            (1 - share,),
        ).fetchone()
        cutoffs = {st: cutoff for st in timed}
        for st, key in sequences.items():
            column = sql.Identifier(key)
            query = percentile.format(column, sql.Identifier(*st))
            cutoffs[st] = conn.execute(query, (1 - share,)).fetchone()[0]
            timed[st] = column
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(HELD)))
        held: dict[str, int] = {}
        split_rows = 0
        for (schema, table), column in sorted(timed.items()):
            split_rows += conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
            ).fetchone()[0]
            if cutoffs[(schema, table)] is None:
                continue
            copy = sql.Identifier(HELD, f"{schema}__{table}")
            newer = (cutoffs[(schema, table)],)
            conn.execute(
                sql.SQL("create table {} as select * from {} where {} > %s").format(
                    copy, sql.Identifier(schema, table), column
                ),
                newer,
            )
            moved = conn.execute(
                sql.SQL("delete from {} where {} > %s").format(
                    sql.Identifier(schema, table), column
                ),
                newer,
            ).rowcount
            if moved:
                held[f"{schema}.{table}"] = moved
        all_rows = sum(
            conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
            ).fetchone()[0]
            for schema, table in conn.execute(
                "select table_schema, table_name from information_schema.tables"
                " where table_schema like 'raw\\_%%' and table_type = 'BASE TABLE'"
            ).fetchall()
        )
    new = sum(held.values())
    return {
        "cutoff": cutoff.isoformat(),
        "sequence_cutoffs": {
            f"{schema}.{table}": value
            for (schema, table), value in cutoffs.items()
            if not isinstance(value, datetime)
        },
        "split_rows": split_rows,
        "new_rows": new,
        "new_share_of_split": round(new / split_rows, 4),
        "new_share_of_all_raw": round(new / (all_rows + new), 4),
        "tables_split": {f"{a}.{b}": c for (a, b), c in (created | sequences).items()},
        "new_rows_per_table": held,
    }


def add_new_rows(url: str) -> None:
    """The held rows back into their raw tables, as the next extract would append them."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_name from information_schema.tables where table_schema = %s",
            (HELD,),
        ).fetchall()
        for (name,) in tables:
            schema, table = name.split("__", 1)
            columns = [
                column
                for (column,) in conn.execute(
                    "select column_name from information_schema.columns"
                    " where table_schema = %s and table_name = %s order by ordinal_position",
                    (HELD, name),
                )
            ]
            values = [sql.SQL("now()") if c in LOAD_STAMPS else sql.Identifier(c) for c in columns]
            conn.execute(
                sql.SQL("insert into {} ({}) select {} from {}").format(
                    sql.Identifier(schema, table),
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join(values),
                    sql.Identifier(HELD, name),
                )
            )
        conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(HELD)))


# --- dbt runs -----------------------------------------------------------------------------


def timed_dbt(warehouse: MartsWarehouse, label: str, *args: str) -> dict[str, Any]:
    """``dbt build`` (plus ``args``) on the warehouse, timed; its slowest models."""
    variables = json.dumps({"as_of": AS_OF.isoformat()})
    with bench_lock():
        started = time.perf_counter()
        warehouse.dbt("build", "--vars", variables, *args)
        seconds = time.perf_counter() - started
    results = json.loads((warehouse.workdir / "target" / "run_results.json").read_text())
    (warehouse.workdir / f"run_results_{label}.json").write_text(json.dumps(results))
    nodes = sorted(
        (
            (round(r["execution_time"], 2), r["unique_id"].split(".", 2)[-1], r["unique_id"])
            for r in results["results"]
        ),
        reverse=True,
    )
    checks = ("test.", "unit_test.")
    models = [n[:2] for n in nodes if not n[2].startswith(checks)]
    tests = sum(n[0] for n in nodes if n[2].startswith(checks))
    say(f"{label}: {seconds:.1f}s ({len(nodes)} nodes, tests {tests:.1f}s)")
    return {
        "seconds": round(seconds, 2),
        "nodes": len(nodes),
        "tests_s": round(tests, 2),
        "slowest": [list(n[:2]) for n in nodes[:12]],
        "slowest_models": [list(n) for n in models[:12]],
    }


# --- the check: incremental == full refresh ------------------------------------------------

#: Where the check keeps each mart's row hashes, in the run's database.
CHECK = "bench_check"


def snapshot_marts(url: str, label: str) -> dict[str, int]:
    """Keep a hash of every mart row (and of each of its values) in ``CHECK``.

    Run stamps (``RUN_STAMPED``) are left out, and a ``customer_id`` stands for its
    cluster (its smallest record key): identity labels a new cluster with a new id, so
    the ids themselves differ from one build history to another. Returns the row counts.
    """
    counts: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(CHECK)))
        conn.execute(
            "create temporary table bench_canon as select customer_id, min(record_key) as label"
            " from intermediate.int_identity__record_customers group by customer_id"
        )
        conn.execute("create index on bench_canon (customer_id)")
        columns: dict[tuple[str, str], list[str]] = {}
        for schema, table, column in conn.execute(
            "select c.table_schema, c.table_name, c.column_name"
            " from information_schema.columns c join information_schema.tables t"
            " using (table_schema, table_name)"
            " where c.table_schema = any(%s) order by c.ordinal_position",
            (list(MART_SCHEMAS),),
        ):
            columns.setdefault((schema, table), []).append(column)
        for (schema, table), names in sorted(columns.items()):
            kept = [n for n in names if n not in RUN_STAMPED and not n.endswith("customer_id")]
            values = [sql.SQL("t.{}").format(sql.Identifier(n)) for n in kept]
            joins = sql.SQL("")
            if "customer_id" in names:
                kept.append("customer_id")
                values.append(sql.SQL("canon.label"))
                joins = sql.SQL(" left join bench_canon canon using (customer_id)")
            hashes = [sql.SQL("md5(row({})::text)").format(sql.SQL(", ").join(values))]
            hashes += [sql.SQL("md5(cast({} as text))").format(v) for v in values]
            target = sql.Identifier(CHECK, f"{label}__{schema}__{table}")
            conn.execute(
                sql.SQL("create table {} as select array[{}] as h from {} t{}").format(
                    target, sql.SQL(", ").join(hashes), sql.Identifier(schema, table), joins
                )
            )
            conn.execute(
                sql.SQL("comment on table {} is {}").format(
                    target, sql.Literal(json.dumps(["row", *kept]))
                )
            )
            counts[f"{schema}.{table}"] = conn.execute(
                sql.SQL("select count(*) from {}").format(target)
            ).fetchone()[0]
        conn.execute(
            "create temporary table bench_clusters as select string_agg(record_key, ','"
            " order by record_key) as g from intermediate.int_identity__record_customers"
            " group by customer_id"
        )
        conn.execute(
            sql.SQL("create table {} as select array[md5(g)] as h from bench_clusters").format(
                sql.Identifier(CHECK, f"{label}__identity__clusters")
            )
        )
        conn.execute(
            sql.SQL("comment on table {} is {}").format(
                sql.Identifier(CHECK, f"{label}__identity__clusters"),
                sql.Literal(json.dumps(["row"])),
            )
        )
        counts["identity.clusters"] = conn.execute(
            "select count(*) from bench_clusters"
        ).fetchone()[0]
    return counts


def compare_snapshots(url: str, ours: str, reference: str) -> dict[str, dict]:
    """Per table: rows in one snapshot and not the other (as multisets), and which
    columns' values differ; tables that agree are left out."""
    differ: dict[str, dict] = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select c.relname, obj_description(c.oid) from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relkind = 'r' and c.relname like %s",
            (CHECK, f"{reference}\\_\\_%"),
        ).fetchall()
        for name, described in sorted(tables):
            table = name.split("__", 1)[1]
            mine = sql.Identifier(CHECK, f"{ours}__{table}")
            theirs = sql.Identifier(CHECK, name)
            labels = json.loads(described)

            def missing(position: int, left=mine, right=theirs) -> int:
                query = sql.SQL(
                    "select count(*) from (select h[{0}] from {1} except all"
                    " select h[{0}] from {2}) s"
                ).format(sql.Literal(position), left, right)
                return conn.execute(query).fetchone()[0]

            only_ours, only_reference = missing(1), missing(1, theirs, mine)
            if only_ours or only_reference:
                columns = {
                    label: missing(i) + missing(i, theirs, mine)
                    for i, label in enumerate(labels[1:], start=2)
                }
                differ[table.replace("__", ".", 1)] = {
                    "rows_only_incremental": only_ours,
                    "rows_only_full_refresh": only_reference,
                    "columns_differing": {k: v for k, v in columns.items() if v},
                }
    return differ


# --- the run ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000, help="world size (100000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--new-share", type=float, default=0.01, help="new data (0.01)")
    parser.add_argument(
        "--warehouse",
        default=DEFAULT_WAREHOUSE,
        help=f"a Postgres URL whose user may create databases ({DEFAULT_WAREHOUSE})",
    )
    parser.add_argument("--rebuild", action="store_true", help="extract the template again")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the run's database (the full refresh's state), and a copy of it after the"
        " incremental run (<run database>_incremental)",
    )
    parser.add_argument(
        "--template-only", action="store_true", help="build the template if missing, then stop"
    )
    parser.add_argument("--skip-check", action="store_true", help="no full-refresh check")
    parser.add_argument("--dbt-timeout", type=float, default=7200, help="per dbt run (s)")
    parser.add_argument(
        "--threads", type=int, default=None, help="dbt threads (default: the profile's, 2)"
    )
    parser.add_argument(
        "--unit-tests",
        action="store_true",
        help="every dbt run runs the unit tests too (the pipeline's build leaves them out)",
    )
    args = parser.parse_args()
    from omnicanal.orchestration.dbt import pipeline_env

    # every dbt run is the pipeline's: its environment (no unit tests) and threads
    if not args.unit_tests:
        os.environ.update(pipeline_env())
    if args.threads:
        os.environ["OMNICANAL_DBT_THREADS"] = str(args.threads)

    template = f"omnicanal_benchdbt_{args.people}_{args.seed}"
    run_db = f"{template}_run_{os.getpid()}"  # runs side by side each have their own
    workdir = Path(tempfile.mkdtemp(prefix="omnicanal-bench-dbt-"))
    say(f"work folder {workdir}")
    if args.rebuild or not database_exists(args.warehouse, template):
        drop_database(args.warehouse, template)
        build_template(args.warehouse, template, args.people, args.seed, workdir)
    if args.template_only:
        return
    copy_database(args.warehouse, template, run_db)
    url = db_url(args.warehouse, run_db)
    warehouse = MartsWarehouse(
        url, None, None, workdir, tuple(platforms()), dbt_timeout=args.dbt_timeout
    )
    figures: dict[str, Any] = {
        "people": args.people,
        "seed": args.seed,
        "as_of": str(AS_OF),
        "threads": int(os.environ.get("OMNICANAL_DBT_THREADS", "2")),
        "unit_tests": args.unit_tests,
    }
    try:
        figures["new_data"] = new = hold_back_newest(url, args.new_share)
        say(
            f"held back {new['new_rows']} rows newer than {new['cutoff']} "
            f"({new['new_share_of_split']:.2%} of {new['split_rows']} rows of the tables split, "
            f"{new['new_share_of_all_raw']:.2%} of all raw rows)"
        )
        figures["full"] = full = timed_dbt(warehouse, "full build (anchor)")
        add_new_rows(url)
        figures["incremental"] = incremental = timed_dbt(warehouse, "incremental run (ours)")
        ratio = incremental["seconds"] / full["seconds"]
        say(f"incremental / full = {ratio:.3f} (goal <= {GOAL_RATIO})")
        say(
            "slowest in the incremental run: "
            + ", ".join(f"{name} {s}s" for s, name in incremental["slowest"][:8])
        )
        figures |= {"ratio": round(ratio, 4), "goal": f"incremental <= {GOAL_RATIO} x full"}
        if args.keep and not args.skip_check:
            # the incremental run's whole warehouse (staging and intermediate too), to
            # compare with the full refresh that the run's database holds afterwards
            copy_database(args.warehouse, run_db, f"{run_db}_incremental")
            say(f"the incremental run's state kept as database {run_db}_incremental")
        if not args.skip_check:
            rows = snapshot_marts(url, "incremental")
            figures["full_refresh"] = timed_dbt(warehouse, "full refresh (check)", "--full-refresh")
            snapshot_marts(url, "full")
            differ = compare_snapshots(url, "incremental", "full")
            figures["check"] = {"tables": len(rows), "rows": rows, "differ": differ}
            figures["check"]["equal"] = not differ
            say(
                f"incremental vs full refresh: {len(rows) - len(differ)} of {len(rows)} tables "
                "equal"
                + "".join(
                    f"\n  {name}: {d['rows_only_incremental']} rows only after the "
                    f"incremental run, {d['rows_only_full_refresh']} only after the full "
                    f"refresh of {rows[name]}; columns {d['columns_differing']}"
                    for name, d in differ.items()
                )
            )
        figures["goal_met"] = ratio <= GOAL_RATIO and figures.get("check", {}).get("equal", True)
    finally:
        if not args.keep:
            drop_database(args.warehouse, run_db)
    print(
        f"\nfull build {full['seconds']:.1f}s, incremental run {incremental['seconds']:.1f}s, "
        f"ratio {figures['ratio']:.3f} (goal <= {GOAL_RATIO})"
    )
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
