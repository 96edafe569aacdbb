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
- ``not_null``, ``unique``, ``accepted_values`` and the project's ``expression_is_true``
  and ``matches_pattern`` answered by one count per relation: the first such test of a
  relation in a run counts, in one query, the rows each of the relation's such tests
  would return (a null; a repeated value; a value not in the list, a false expression,
  a value not matching, each written as the test's macro writes it; no test whose
  arguments hold Jinja), in the rows the tests read
  (the pipeline's scope of the rows the run wrote, or all), and every one of those tests
  whose count is 0 passes on that answer. A test whose count is not 0 runs, as dbt
  would run it: it fails, alone, with its own failures count. One scan and one dbt
  node's worth of work instead of one per test (at 10k, 569 of the 655 data tests).

Only a valid, ready index counts, on plain columns (no expression, no predicate), with
the default operator class and a deterministic collation (equality as ``group by``
sees it); only a table (or an incremental model's table) or a source, in the database
dbt runs on, whose columns the test names (a test of a column that is gone runs, and
fails as it should); only dbt's own test macros or the project's (no package's test of
the same name); only a test that fails on any row (``fail_calc`` ``count(*)``,
thresholds that zero rows pass), has no ``where`` of its own and stores no failures.
The catalog (and the counts) are read once per relation and run, on the test's
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
#: Per dbt invocation: the checks one count answers, per relation and scope.
_checks: dict[str, dict[tuple[Any, ...], frozenset[tuple[str, ...]]]] = {}
#: Per dbt invocation, relation and scope: each check's count of failing rows (None:
#: the count failed, every test runs), and the lock its first test holds.
_counted: dict[tuple[Any, ...], dict[tuple[str, ...], int] | None] = {}
_counts_locks: dict[tuple[Any, ...], threading.Lock] = {}
_catalogs_lock = threading.Lock()
_ORIGINAL: dict[str, Any] = {}

#: The tests answered, each by the macro whose SQL the proofs below rely on: dbt's
#: ``not_null`` (rows where the column is null), ``unique`` (non-null values in more
#: than one row), ``accepted_values`` (values not in the list) and the project's
#: ``unique_combination`` (groups of the columns with more than one row),
#: ``expression_is_true`` and ``matches_pattern`` (rows failing an expression, a pattern).
_MACROS = {
    "not_null": "macro.dbt.test_not_null",
    "unique": "macro.dbt.test_unique",
    "accepted_values": "macro.dbt.test_accepted_values",
    "unique_combination": "macro.{project}.test_unique_combination",
    "expression_is_true": "macro.{project}.test_expression_is_true",
    "matches_pattern": "macro.{project}.test_matches_pattern",
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
    project = runner.config.project_name
    macro = _MACROS.get(meta.name, "").format(project=project)
    if not macro or macro not in node.depends_on.macros:
        return None  # another test by that name (an override, a package's)
    if not _fails_on_any_row(node.config):
        return None
    columns = _columns(meta.name, meta.kwargs)
    check = _counted_check(node, manifest, project)
    tested = _tested_relation(node, manifest)
    if (columns is None and check is None) or tested is None:
        return None
    catalog = _catalog(runner.adapter, node, tested)
    if catalog is None or not (columns or frozenset()) <= catalog.columns:
        return None  # the test's query would fail: let it
    stamp = _new_rows_stamp(node, manifest)
    if stamp is not None and stamp not in catalog.columns:
        return None  # the pipeline's scope (get_where_subquery) would fail: let it
    where = ".".join(tested[1:])
    if meta.name == "not_null" and columns and columns <= catalog.not_null:
        return f"{where}.{next(iter(columns))} is declared not null"
    if meta.name == "unique" and columns in catalog.unique:
        return f"{where} has a unique index on {next(iter(columns))}"
    if meta.name == "unique_combination" and columns:
        for key in catalog.unique_not_null:
            if key <= columns:
                return f"{where} has a unique index on {', '.join(sorted(key))}, not null"
    if (
        stamp is not None
        and columns
        and meta.name in ("not_null", "unique")
        and (meta.name == "not_null" or columns <= catalog.groupable)
        and _wrote_nothing(runner.adapter, node, tested, stamp)
    ):
        return f"{where} has no row this run wrote ({stamp}): the test would read none"
    if check is not None:
        counts = _counts(runner, manifest, tested, stamp, catalog)
        if counts is not None and counts.get(check) == 0:
            scope = f" of the rows this run wrote ({stamp})" if stamp else ""
            return (
                f"{where}{_answer(check)}{scope}: one count for the relation's"
                f" {len(counts)} not_null, unique, accepted_values, expression_is_true and"
                " matches_pattern tests"
            )
    return None


#: What one count per relation answers, the test's name and what it checks:
#: ("not_null", column), ("accepted_values", column, value...),
#: ("expression_is_true", expression), ("matches_pattern", column, pattern).
Check = tuple[str, ...]
#: Jinja in a test's argument, which dbt renders when it compiles the test.
_JINJA = re.compile(r"\{[{%#]")
#: The tests one count per relation answers.
_COUNTED = ("not_null", "unique", "accepted_values", "expression_is_true", "matches_pattern")


def _answer(check: Check) -> str:
    """What a zero count says, after the relation's name."""
    if check[0] == "not_null":
        return f".{check[1]} has no null"
    if check[0] == "unique":
        return f".{check[1]} has no value in two rows"
    if check[0] == "accepted_values":
        return f".{check[1]} has only the accepted values"
    if check[0] == "matches_pattern":
        return f".{check[1]} matches its pattern"
    return f" has no row where ({check[1]}) is false"


def _counted_check(node: Any, manifest: Any, project: str) -> Check | None:
    """The check a data test makes, when one count of its relation may answer it: dbt's
    own ``not_null`` or ``accepted_values`` (no implementation of the project's or a
    package's that dispatch would run instead) or the project's ``expression_is_true`` or
    ``matches_pattern``, failing on any row, with no ``where`` of its own, on a plain
    column; accepted values quoted (dbt's default) and of a type whose text dbt's macro
    writes as Python does (text, numbers, booleans); no Jinja in the expression, pattern
    or values (dbt renders it when it compiles the test). The count writes every value,
    expression and pattern as the test's macro does, so a SQL error is the same in
    both (and the count failing leaves every test to run)."""
    meta = getattr(node, "test_metadata", None)
    if (
        getattr(node, "resource_type", None) != "test"
        or meta is None
        or meta.namespace
        or meta.name not in _COUNTED
        or _MACROS[meta.name].format(project=project) not in node.depends_on.macros
        or _overridden(manifest, meta.name)
        or not _fails_on_any_row(node.config)
    ):
        return None
    kwargs = meta.kwargs
    arguments = [kwargs.get(name) for name in ("expression", "pattern", "values")]
    if _JINJA.search(json.dumps(arguments, default=str)):
        return None  # dbt renders it at compile time (a ref, a var): the test runs
    if meta.name == "expression_is_true":
        expression = kwargs.get("expression")
        return ("expression_is_true", expression) if isinstance(expression, str) else None
    columns = _columns(meta.name, kwargs)
    if columns is None:
        return None
    (column,) = columns
    if meta.name in ("not_null", "unique"):
        return (meta.name, column)
    if meta.name == "matches_pattern":
        pattern = kwargs.get("pattern")
        return ("matches_pattern", column, pattern) if isinstance(pattern, str) else None
    values = kwargs.get("values")
    if (
        kwargs.get("quote", True) is not True
        or not isinstance(values, list | tuple)
        or not values
        or not all(isinstance(v, str | int | float | bool) for v in values)
    ):
        return None
    return ("accepted_values", column, *(str(v) for v in values))


#: Per dbt invocation and test: whether the project or a package implements it itself.
_overrides: dict[tuple[str, str], bool] = {}


def _overridden(manifest: Any, test: str) -> bool:
    """Whether dispatch would run another implementation of dbt's test ``test`` (the
    project's tests are macros of their own, not dispatched)."""
    from dbt_common.invocation import get_invocation_id

    if test not in ("not_null", "unique", "accepted_values"):
        return False
    key = (get_invocation_id(), test)
    with _catalogs_lock:
        if key not in _overrides:
            _overrides[key] = any(
                macro.name in (f"default__test_{test}", f"postgres__test_{test}")
                and macro.package_name != "dbt"
                for macro in manifest.macros.values()
            )
        return _overrides[key]


def _counted_checks(manifest: Any, project: str) -> dict[tuple[Any, ...], frozenset[Check]]:
    """Per (relation, scope stamp): the checks of every data test in the manifest that a
    count may answer (selected or not: counting one more is harmless)."""
    from dbt_common.invocation import get_invocation_id

    invocation = get_invocation_id()
    with _catalogs_lock:
        if invocation in _checks:
            return _checks[invocation]
    found: dict[tuple[Any, ...], set[Check]] = {}
    for node in manifest.nodes.values():
        check = _counted_check(node, manifest, project)
        tested = _tested_relation(node, manifest) if check is not None else None
        if check is not None and tested is not None:
            found.setdefault((tested, _new_rows_stamp(node, manifest)), set()).add(check)
    index = {key: frozenset(checks) for key, checks in found.items()}
    with _catalogs_lock:
        _checks[invocation] = index
    return index


def _count_sql(check: Check) -> str:
    """How many rows would fail ``check``, as the test's macro selects them: a null
    (not_null); a value ``not in`` the accepted ones (a null is in neither); a row where
    ``not coalesce((expression), true)``; a non-null value that does not match the
    pattern (``~``); for unique, the non-null values that repeat another row's (0
    exactly when dbt's query, the values in more than one row, returns none)."""
    if check[0] == "expression_is_true":
        return f"count(*) filter (where not coalesce(({check[1]}), true))"
    column = _quote(check[1])
    if check[0] == "not_null":
        return f"count(*) filter (where {column} is null)"
    if check[0] == "unique":  # 0 exactly when no non-null value is in two rows
        return f"count({column}) - count(distinct {column})"
    if check[0] == "matches_pattern":
        return f"count(*) filter (where {column} is not null and not ({column} ~ '{check[2]}'))"
    values = ", ".join("'" + value + "'" for value in check[2:])
    return f"count(*) filter (where {column} not in ({values}))"


def _counts(
    runner: Any,
    manifest: Any,
    relation: tuple[str, str, str],
    stamp: str | None,
    catalog: Catalog,
) -> dict[Check, int] | None:
    """How many rows each counted check of ``relation`` finds, in one query, in the
    scope its tests read (the rows stamped at or after this run's start, with a stamp);
    asked by the relation's first such test of the run, read by the others."""
    from dbt import tracking
    from dbt_common.invocation import get_invocation_id

    key = (get_invocation_id(), relation, stamp)
    with _catalogs_lock:
        lock = _counts_locks.setdefault(key, threading.Lock())
    with lock:  # a test of the same relation on another thread waits for the answer
        with _catalogs_lock:
            if key in _counted:
                return _counted[key]
        # a column the table lacks stays out (its test runs, and fails); a not_null test
        # of a column declared not null is answered by the catalog
        checks = sorted(
            check
            for check in _counted_checks(manifest, runner.config.project_name).get(
                (relation, stamp), frozenset()
            )
            if (check[0] == "expression_is_true" or check[1] in catalog.columns)
            and not (check[0] == "not_null" and check[1] in catalog.not_null)
            and not (
                check[0] == "unique"
                and (frozenset(check[1:]) in catalog.unique or check[1] not in catalog.groupable)
            )
        )
        started = getattr(tracking.active_user, "run_started_at", None)
        counts: dict[Check, int] | None = None
        if checks and (stamp is None or started is not None):
            counted = ", ".join(_count_sql(check) for check in checks)
            query = f"select {counted} from {'.'.join(_quote(p) for p in relation[1:])}"
            query = query.replace("%", "%%")  # the driver formats the query: keep a % as is
            if stamp is not None:  # the scope get_where_subquery gives the tests
                query += f" where {_quote(stamp)} >= %(started)s"
            try:
                row = _query(runner.adapter, runner.node, query, {"started": started})
                counts = {check: int(n) for check, n in zip(checks, row, strict=True)}
            except Exception:  # no answer: each test runs its own query
                log.debug("no count for %s", relation, exc_info=True)
        with _catalogs_lock:
            _counted[key] = counts
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
