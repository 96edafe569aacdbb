"""A data test whose answer the warehouse already gives is not run, in the pipeline.

The pipeline's build runs ~650 data tests on every load, and each costs dbt ~50 ms of
Python and a query whatever it reads. Some can only pass:

- ``not_null`` on a column declared ``not null`` (the raw tables' primary keys);
- ``unique`` on a column with a unique index of its own (the raw tables' primary keys,
  the marts' ``<model>_key_idx`` post-hooks): the test counts repeated non-null values,
  which such an index refuses;
- ``unique_combination`` on columns that include every column of a unique index whose
  columns are all ``not null`` (with a null in them the index would let two rows
  through that ``group by`` counts as one);
- ``not_null`` and ``unique`` on an incremental model that the pipeline's scope narrows
  to the rows this run wrote (its meta ``new_rows_stamp``, see
  dbt_project/macros/tests/get_where_subquery.sql) when it has none: the test would read
  no row. (In a run with new data the stamped marts always write some, their look-backs
  rewrite recent rows, so this saves only on runs with nothing new.)
- ``not_null`` on a relation whose not_null-tested columns were counted together: the
  first such test of a relation in a run counts, in one query, the nulls of every column
  a ``not_null`` test names on that relation (in the pipeline's scope of the rows the run
  wrote, as the tests read them), and every one of those tests whose column has none
  passes on that answer. A column with a null has its own test run, as dbt would run
  it: it fails, alone, with its own failures count. One scan and one dbt node's worth of
  work instead of one per column (289 not_null tests at 10k).

Only a valid, ready index counts, on plain columns (no expression, no predicate), with
the default operator class and a deterministic collation (equality as ``group by``
sees it); only a table (or an incremental model's table) or a source, in the database
dbt runs on, whose columns the test names (a test of a column that is gone runs, and
fails as it should); only dbt's own test macros or the project's (no package's test of
the same name); only a test that fails on any row (``fail_calc`` ``count(*)``,
thresholds that zero rows pass), has no ``where`` of its own and stores no failures.
The catalog (and the nulls) are read once per relation and run, on the test's
connection, after the model and its hooks have run (dbt runs a model's tests after it,
and the models after it after its tests; a source is read as it is then, as its tests
would read it).

Such a test ends ``pass`` with 0 failures, as it would have, without being compiled or
run; its message in ``run_results.json`` says what answered it. Installed by the dbt
plugin ``dbt_omnicanal`` when ``OMNICANAL_DBT_SKIP_PROVEN_TESTS=1``, which
``pipeline_env`` sets: analysts' ``omnicanal dbt`` runs and CI run every test, so a
constraint that a model stops creating still has its test.
"""

from __future__ import annotations

import inspect
import json
import logging
import operator
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

SKIP_PROVEN_TESTS_ENV = "OMNICANAL_DBT_SKIP_PROVEN_TESTS"
#: The pipeline's test scope (pipeline_env; read by the macro new_rows_stamp too).
TEST_SCOPE_ENV = "OMNICANAL_DBT_TEST_SCOPE"

log = logging.getLogger(__name__)

#: A column name as the catalog holds it when written unquoted.
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*\Z")
#: A test threshold dbt compares the failure count with: ``!= 0``, ``> 10``, ...
_THRESHOLD = re.compile(r"\s*(!=|<>|>=|<=|==|=|>|<)\s*(-?\d+(?:\.\d+)?)\s*\Z")
_COMPARE = {
    "!=": operator.ne,
    "<>": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}

#: What the catalog says of a relation: its not-null columns, and the column sets of its
#: unique indexes (all their columns not null: ``all_not_null``).
_CATALOG = """
with relation as (
    select c.oid
    from pg_catalog.pg_class as c
    join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
    where current_database() = %(database)s
        and n.nspname = %(schema)s
        and c.relname = %(name)s
        and c.relkind in ('r', 'p')
),

attributes as (
    select
        a.attname::text as name,
        a.attnotnull as not_null,
        exists (
            select 1
            from pg_catalog.pg_opclass as o
            join pg_catalog.pg_am as am on am.oid = o.opcmethod
            where o.opcdefault and o.opcintype = a.atttypid and am.amname in ('btree', 'hash')
        ) as groupable
    from pg_catalog.pg_attribute as a
    where a.attrelid = (select oid from relation)
        and a.attnum > 0
        and not a.attisdropped
),

unique_keys as (
    select
        i.indexrelid,
        array_agg(a.attname::text order by k.position) as columns,
        bool_and(a.attnotnull) as all_not_null
    from pg_catalog.pg_index as i
    cross join lateral unnest(i.indkey::int2 [], i.indclass::oid [], i.indcollation::oid [])
        with ordinality as k (attnum, opclass, collation_oid, position)
    join pg_catalog.pg_attribute as a
        on a.attrelid = i.indrelid and a.attnum = k.attnum
    join pg_catalog.pg_opclass as opc on opc.oid = k.opclass
    left join pg_catalog.pg_collation as coll on coll.oid = k.collation_oid
    where i.indrelid = (select oid from relation)
        and i.indisunique
        and i.indisvalid
        and i.indisready
        and i.indislive
        and i.indpred is null
        and i.indexprs is null
        and k.position <= i.indnkeyatts
        and opc.opcdefault
        and coalesce(coll.collisdeterministic, true)
    group by i.indexrelid
    having count(*) = max(i.indnkeyatts)
)

select
    exists (select 1 from relation),
    (select coalesce(json_agg(name), '[]') from attributes),
    (select coalesce(json_agg(name), '[]') from attributes where not_null),
    (select coalesce(json_agg(name), '[]') from attributes where groupable),
    (select coalesce(json_agg(columns), '[]') from unique_keys),
    (select coalesce(json_agg(columns), '[]') from unique_keys where all_not_null)
"""


@dataclass(frozen=True)
class Catalog:
    """A relation's columns and the constraints that answer tests."""

    columns: frozenset[str]
    not_null: frozenset[str]
    groupable: frozenset[str]
    unique: frozenset[frozenset[str]]
    unique_not_null: frozenset[frozenset[str]]


#: Per dbt invocation (a dbtRunner may run several in one process), per relation.
_catalogs: dict[tuple[str, str, str, str], Catalog | None] = {}
#: Per dbt invocation, relation and stamp: whether the relation has no row of this run.
_wrote: dict[tuple[str, ...], bool] = {}
#: Per dbt invocation: the columns the not_null tests name, per relation and scope.
_not_null_tested: dict[str, dict[tuple[Any, ...], frozenset[str]]] = {}
#: Per dbt invocation, relation and scope: each not_null-tested column's null count
#: (None: the count failed, every test runs), and the lock its first test holds.
_nulls: dict[tuple[Any, ...], dict[str, int] | None] = {}
_nulls_locks: dict[tuple[Any, ...], threading.Lock] = {}
_catalogs_lock = threading.Lock()
_ORIGINAL: dict[str, Any] = {}

#: The tests answered, each by the macro whose SQL the proofs below rely on: dbt's
#: ``not_null`` (rows where the column is null), ``unique`` (non-null values in more
#: than one row) and the project's ``unique_combination`` (groups of the columns with
#: more than one row).
_MACROS = {
    "not_null": "macro.dbt.test_not_null",
    "unique": "macro.dbt.test_unique",
    "unique_combination": "macro.{project}.test_unique_combination",
}


def skip_proven_tests() -> bool:
    """Make dbt pass, without running it, a data test the warehouse's constraints answer;
    returns whether it is in place (installed once per process)."""
    try:
        from dbt.task.base import collect_timing_info
        from dbt.task.test import TestRunner
    except ImportError:  # no dbt here
        return False
    current = TestRunner.compile_and_execute
    if getattr(current, "skips_proven_tests", False):
        return True
    if list(inspect.signature(current).parameters) != ["self", "manifest", "ctx"]:
        log.warning("dbt's test runner changed: every data test runs, as before")
        return False
    _ORIGINAL["compile_and_execute"] = current

    def compile_and_execute(self: Any, manifest: Any, ctx: Any) -> Any:
        proof, timing = None, []
        try:
            # timed as its execution, as run_results.json gives every test's
            with collect_timing_info("execute", timing.append):
                proof = _proof(self, manifest)
        except Exception:  # no proof: the test runs as dbt would run it
            log.debug("no proof for %s", self.node.unique_id, exc_info=True)
        if proof is None:
            return _ORIGINAL["compile_and_execute"](self, manifest, ctx)
        ctx.timing.extend(timing)
        return _passed(self.node, proof)

    compile_and_execute.skips_proven_tests = True  # type: ignore[attr-defined]
    compile_and_execute.__doc__ = "dbt's, except for a test proven already: see " + __name__
    TestRunner.compile_and_execute = compile_and_execute  # type: ignore[method-assign]
    return True


def _passed(node: Any, proof: str) -> Any:
    from dbt.artifacts.schemas.results import TestStatus
    from dbt.artifacts.schemas.run import RunResult

    return RunResult(
        status=TestStatus.Pass,
        thread_id=threading.current_thread().name,
        execution_time=0,
        timing=[],
        message=f"not run: {proof}",
        node=node,
        adapter_response={},
        failures=0,
        batch_results=None,
    )


def _proof(runner: Any, manifest: Any) -> str | None:
    """What answers this data test already, or None when it has to run."""
    node = runner.node
    meta = getattr(node, "test_metadata", None)
    if getattr(node, "resource_type", None) != "test" or meta is None or meta.namespace:
        return None  # a unit or singular test, or a package's generic test
    macro = _MACROS.get(meta.name, "").format(project=runner.config.project_name)
    if not macro or macro not in node.depends_on.macros:
        return None  # another test by that name (an override, a package's)
    if not _fails_on_any_row(node.config):
        return None
    columns = _columns(meta.name, meta.kwargs)
    tested = _tested_relation(node, manifest)
    if columns is None or tested is None:
        return None
    catalog = _catalog(runner.adapter, node, tested)
    if catalog is None or not columns <= catalog.columns:
        return None  # the test's query would fail: let it
    stamp = _new_rows_stamp(node, manifest)
    if stamp is not None and stamp not in catalog.columns:
        return None  # the pipeline's scope (get_where_subquery) would fail: let it
    where = ".".join(tested[1:])
    if meta.name == "not_null" and columns <= catalog.not_null:
        return f"{where}.{next(iter(columns))} is declared not null"
    if meta.name == "unique" and columns in catalog.unique:
        return f"{where} has a unique index on {next(iter(columns))}"
    if meta.name == "unique_combination":
        for key in catalog.unique_not_null:
            if key <= columns:
                return f"{where} has a unique index on {', '.join(sorted(key))}, not null"
    if (
        stamp is not None
        and meta.name in ("not_null", "unique")
        and (meta.name == "not_null" or columns <= catalog.groupable)
        and _wrote_nothing(runner.adapter, node, tested, stamp)
    ):
        return f"{where} has no row this run wrote ({stamp}): the test would read none"
    if meta.name == "not_null":
        (column,) = columns
        nulls = _null_counts(runner, manifest, tested, stamp, catalog)
        if nulls is not None and nulls.get(column) == 0:
            scope = f" of the rows this run wrote ({stamp})" if stamp else ""
            return (
                f"{where}.{column} has no null{scope}: one count of the {len(nulls)}"
                " not_null-tested columns of the relation"
            )
    return None


def _not_null_columns(manifest: Any) -> dict[tuple[Any, ...], frozenset[str]]:
    """Per (relation, scope stamp): the columns named by the not_null tests that the
    count may answer (dbt's macro, failing on any row, no ``where``, a plain column), of
    every test in the manifest (selected or not: counting one more column is harmless).
    None at all when the project or a package implements ``not_null`` itself (dispatch
    would run its SQL, not dbt's, which the count stands for)."""
    from dbt_common.invocation import get_invocation_id

    invocation = get_invocation_id()
    with _catalogs_lock:
        if invocation in _not_null_tested:
            return _not_null_tested[invocation]
    found: dict[tuple[Any, ...], set[str]] = {}
    overridden = any(
        macro.name in ("default__test_not_null", "postgres__test_not_null")
        and macro.package_name != "dbt"
        for macro in manifest.macros.values()
    )
    for node in () if overridden else manifest.nodes.values():
        meta = getattr(node, "test_metadata", None)
        if (
            getattr(node, "resource_type", None) != "test"
            or meta is None
            or meta.namespace
            or meta.name != "not_null"
            or _MACROS["not_null"] not in node.depends_on.macros
            or not _fails_on_any_row(node.config)
        ):
            continue
        columns = _columns(meta.name, meta.kwargs)
        tested = _tested_relation(node, manifest)
        if columns is None or tested is None:
            continue
        found.setdefault((tested, _new_rows_stamp(node, manifest)), set()).update(columns)
    index = {key: frozenset(names) for key, names in found.items()}
    with _catalogs_lock:
        _not_null_tested[invocation] = index
    return index


def _null_counts(
    runner: Any,
    manifest: Any,
    relation: tuple[str, str, str],
    stamp: str | None,
    catalog: Catalog,
) -> dict[str, int] | None:
    """Each not_null-tested column of ``relation``'s null count, in one query, in the
    scope the tests read (the rows stamped at or after this run's start, with a stamp);
    asked by the relation's first not_null test of the run, read by the others."""
    from dbt import tracking
    from dbt_common.invocation import get_invocation_id

    key = (get_invocation_id(), relation, stamp)
    with _catalogs_lock:
        lock = _nulls_locks.setdefault(key, threading.Lock())
    with lock:  # a test of the same relation on another thread waits for the answer
        with _catalogs_lock:
            if key in _nulls:
                return _nulls[key]
        tested = _not_null_columns(manifest).get((relation, stamp), frozenset())
        # a column the table lacks stays out (its test runs, and fails); one declared
        # not null is answered by the catalog
        columns = sorted((tested & catalog.columns) - catalog.not_null)
        started = getattr(tracking.active_user, "run_started_at", None)
        counts: dict[str, int] | None = None
        if columns and (stamp is None or started is not None):
            counted = ", ".join(f"count(*) filter (where {_quote(c)} is null)" for c in columns)
            query = f"select {counted} from {'.'.join(_quote(p) for p in relation[1:])}"
            if stamp is not None:  # the scope get_where_subquery gives the tests
                query += f" where {_quote(stamp)} >= %(started)s"
            try:
                row = _query(runner.adapter, runner.node, query, {"started": started})
                counts = {column: int(n) for column, n in zip(columns, row, strict=True)}
            except Exception:  # no answer: each test runs its own query
                log.debug("no null count for %s", relation, exc_info=True)
        with _catalogs_lock:
            _nulls[key] = counts
        return counts


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _new_rows_stamp(node: Any, manifest: Any) -> str | None:
    """The stamp column the pipeline's scope filters this test's model on, as the macro
    new_rows_stamp (dbt_project/macros/tests/get_where_subquery.sql) decides it."""
    from dbt.flags import get_flags

    if os.environ.get(TEST_SCOPE_ENV, "all") != "new" or getattr(
        get_flags(), "FULL_REFRESH", False
    ):
        return None
    model = manifest.nodes.get(getattr(node, "attached_node", None) or "")
    if model is None or model.config.materialized != "incremental":
        return None
    stamp = (model.config.meta or {}).get("new_rows_stamp")
    return stamp if isinstance(stamp, str) and stamp else None


def _wrote_nothing(adapter: Any, node: Any, relation: tuple[str, str, str], stamp: str) -> bool:
    """Whether ``relation`` holds no row stamped at or after this run's start (dbt's
    ``run_started_at``, as the scope compares it). Asked once per run and relation: its
    tests run after its model and before any model after it."""
    from dbt import tracking
    from dbt_common.invocation import get_invocation_id

    started = getattr(tracking.active_user, "run_started_at", None)
    if started is None:
        return False
    key = (get_invocation_id(), *relation, stamp)
    with _catalogs_lock:
        if key in _wrote:
            return _wrote[key]
    quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (*relation[1:], stamp))
    table, column = quoted.rsplit(".", 1)
    found = _query(
        adapter,
        node,
        f"select not exists (select 1 from {table} where {column} >= %(started)s)",
        {"started": started},
    )
    with _catalogs_lock:
        _wrote[key] = bool(found[0])
    return _wrote[key]


def _fails_on_any_row(config: Any) -> bool:
    """Whether the test's result on zero failing rows is a pass, nothing is stored, and
    no ``where`` of its own (SQL of the analyst's, which could fail) narrows its rows."""
    from dbt.flags import get_flags

    if getattr(config, "where", None):
        return False
    if " ".join(str(config.fail_calc).lower().split()) != "count(*)":
        return False
    if (
        config.store_failures
        or config.store_failures_as
        or getattr(get_flags(), "STORE_FAILURES", None)
    ):
        return False
    for threshold in (config.warn_if, config.error_if):
        match = _THRESHOLD.match(str(threshold))
        if match is None or _COMPARE[match[1]](0, float(match[2])):
            return False
    return True


def _columns(test: str, kwargs: dict[str, Any]) -> frozenset[str] | None:
    if test == "unique_combination":
        names = kwargs.get("columns")
        names = list(names) if isinstance(names, list | tuple) else []
    else:
        names = [kwargs.get("column_name")]
    if not names or not all(isinstance(n, str) and _PLAIN.match(n) for n in names):
        return None
    return frozenset(names)


def _tested_relation(node: Any, manifest: Any) -> tuple[str, str, str] | None:
    """The table the test reads: its model's (a table or incremental) or its source's."""
    attached = getattr(node, "attached_node", None)
    if attached:
        model = manifest.nodes.get(attached)
        if model is None or model.config.materialized not in ("table", "incremental"):
            return None
        return model.database, model.schema, model.alias
    parents = list(node.depends_on.nodes)
    if len(parents) == 1 and parents[0] in manifest.sources:
        source = manifest.sources[parents[0]]
        return source.database, source.schema, source.identifier
    return None


def _query(adapter: Any, node: Any, query: str, params: dict[str, Any]) -> tuple:
    """One row of ``query``, on the test's own connection (which dbt_connections keeps for
    the thread's next node), in a transaction of its own."""
    with adapter.connection_named(node.unique_id, node):
        handle = adapter.connections.get_thread_connection().handle
        try:
            with handle.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchone()
        finally:
            handle.rollback()  # a read in a transaction dbt does not know of: ended


def _json(value: Any) -> list:
    return json.loads(value) if isinstance(value, str) else list(value)


def _catalog(adapter: Any, node: Any, relation: tuple[str, str, str]) -> Catalog | None:
    from dbt_common.invocation import get_invocation_id

    key = (get_invocation_id(), *relation)
    with _catalogs_lock:
        if key in _catalogs:
            return _catalogs[key]
    database, schema, name = relation
    exists, columns, not_null, groupable, unique, unique_not_null = _query(
        adapter, node, _CATALOG, {"database": database, "schema": schema, "name": name}
    )
    catalog = None
    if exists:
        catalog = Catalog(
            columns=frozenset(_json(columns)),
            not_null=frozenset(_json(not_null)),
            groupable=frozenset(_json(groupable)),
            unique=frozenset(frozenset(key) for key in _json(unique)),
            unique_not_null=frozenset(frozenset(key) for key in _json(unique_not_null)),
        )
    with _catalogs_lock:
        _catalogs[key] = catalog
    return catalog
