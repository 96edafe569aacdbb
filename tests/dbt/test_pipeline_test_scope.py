"""What the pipeline's incremental build tests (on an incremental model, the rows it
wrote), and the staging models incremental on the loader's ``_sdc_batched_at``.

A world of 40 people, its commerce channels extracted by their taps, and dbt's build of
fct_orders with its ancestors as the pipeline runs it (``pipeline_env``): then

- a row an earlier run wrote, broken in the mart afterwards, is not tested again by the
  next pipeline build (that run wrote it and tested it), while an analyst's build (no
  OMNICANAL_DBT_TEST_SCOPE) still finds it;
- a bad row the run itself builds (an order whose raw total turned negative) fails the
  pipeline build's test, and only that row is counted;
- staging takes a raw order loaded again (and its lines), drops one gone from raw, and
  drops the lines of one loaded again with none left;
- the pipeline's data tests hand their connection on to the next node of their thread
  (a few connections for all of fct_orders' tests, not one each), and a test whose
  query fails fails alone;
- the pipeline passes, without running them, the tests the warehouse answers (a not-null
  column, a unique index, a model with no row of this run), runs them when the answer is
  gone (a dropped primary key, a row this run wrote), and an analyst's run runs them all;
- the pipeline counts, in one query per relation, the rows each of its not_null and
  accepted_values tests would find, in the rows the tests read, and passes the tests
  that find none; a test with a count has its own query run, and fails alone with its
  own count.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from marts_world import COMMERCE, MartsWarehouse, sandbox_warehouse

SEED = 20251130
AS_OF = datetime(2025, 11, 1, 12, 0, 0, tzinfo=UTC)
#: the generic test that keeps fct_orders' totals non-negative
TOTAL_TEST = "expression_is_true_fct_orders_total_price__total_price_0"
SELECT = ("--select", "+fct_orders", "+dim_customers", "--indirect-selection", "cautious")
#: fct_orders' own tests (not those of the marts this module does not build that refer to it)
FCT_ORDERS_TESTS = ("--select", "fct_orders", "--indirect-selection", "cautious")


@pytest.fixture(scope="module")
def marts(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MartsWarehouse]:
    from omnicanal.orchestration.dbt import pipeline_env
    from omnicanal.sandbox import generate_world

    world = generate_world(40, SEED, as_of=AS_OF)
    workdir = tmp_path_factory.mktemp("test_scope")
    with (
        pytest.MonkeyPatch.context() as patch,
        sandbox_warehouse(pg_admin_url, workdir, world, COMMERCE) as built,
    ):
        for name, value in pipeline_env().items():
            patch.setenv(name, value)
        built.dbt("build", *SELECT)
        yield built


def build(marts: MartsWarehouse, *args: str) -> dict[str, tuple[str, int]]:
    """dbt ``args`` (a build or a test) that may fail: each fct_orders test's status and
    failures, by test name."""
    return {
        name: (r["status"], r["failures"] or 0)
        for name, r in test_results(marts, *args).items()
        if "fct_orders" in r["unique_id"]
    }


def test_a_pipeline_build_tests_the_rows_it_wrote_and_analysts_test_every_row(
    marts: MartsWarehouse,
) -> None:
    from omnicanal.orchestration.dbt import pipeline_env

    assert pipeline_env()["OMNICANAL_DBT_TEST_SCOPE"] == "new"
    assert "jit=off" in pipeline_env()["PGOPTIONS"]
    # a row written by an earlier run and broken since: the oldest order, outside
    # fct_orders' look-back, so the next run leaves it as it is
    (old,) = marts.rows("select order_key from marts.fct_orders order by updated_at limit 1")[0]
    with_old = marts.rows("select count(*) from marts.fct_orders")[0][0]
    marts.rows("update marts.fct_orders set total_price = -1 where order_key = %s returning 1", old)
    tests = build(marts, "build", *SELECT)
    assert tests[TOTAL_TEST] == ("pass", 0)
    assert marts.rows("select count(*) from marts.fct_orders")[0][0] == with_old

    # a bad row the next run builds: the newest Shopify order's total turns negative
    # in raw, as a load would bring it (its updated_at is inside the look-back)
    (shopify_id,) = marts.rows("select id from raw_shopify.orders order by updated_at desc")[0]
    marts.rows(
        "update raw_shopify.orders set total_price_set = jsonb_set("
        "to_jsonb(total_price_set), '{shop_money,amount}', '\"-5.00\"'),"
        " updated_at = now(), _sdc_batched_at = now() where id = %s returning 1",
        shopify_id,
    )
    tests = build(marts, "build", *SELECT)
    assert tests[TOTAL_TEST] == ("fail", 1)  # the new row only: the old one is not read
    new = f"shopify:{shopify_id}"
    assert marts.rows("select total_price from marts.fct_orders where order_key = %s", new) == [
        (-5,)
    ]

    # an analyst's test (no scope in the environment) reads every row: both
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("OMNICANAL_DBT_TEST_SCOPE")
        tests = build(marts, "test", "--select", "fct_orders")
    assert tests[TOTAL_TEST] == ("fail", 2)


def test_incremental_staging_takes_changed_raw_rows_and_drops_gone_ones(
    marts: MartsWarehouse,
) -> None:
    """Staging models incremental on ``_sdc_batched_at``: a raw order loaded again with a
    change is rebuilt (its lines too, replaced rather than added to), one the loader no
    longer holds leaves staging with its lines, one loaded again with every line removed
    loses its old lines (though it yields no line for delete+insert to replace them by),
    and the rest are not rewritten."""
    changed, gone, emptied = (
        row[0] for row in marts.rows("select id from raw_shopify.orders order by id limit 3")
    )
    lines_before = dict(
        marts.rows(
            "select shopify_order_id, count(*) from staging.stg_shopify__order_lines"
            " where shopify_order_id in (%s, %s) group by 1",
            changed,
            emptied,
        )
    )
    assert lines_before[changed] > 0
    assert lines_before[emptied] > 0
    # the loader keeps an array of objects as jsonb or as jsonb[]: an empty one of its type
    (line_items_type,) = marts.rows(
        "select data_type from information_schema.columns"
        " where table_schema = 'raw_shopify' and table_name = 'orders'"
        " and column_name = 'line_items'"
    )[0]
    no_lines = "'[]'" if line_items_type == "jsonb" else "'{}'"
    marts.rows(
        f"update raw_shopify.orders set line_items = {no_lines}, _sdc_batched_at = now()"
        " where id = %s returning 1",
        emptied,
    )
    stamps = dict(
        marts.rows("select shopify_order_id, _loaded_at from staging.stg_shopify__orders")
    )
    marts.rows(
        "update raw_shopify.orders set email = 'changed@example.com', _sdc_batched_at = now()"
        " where id = %s returning 1",
        changed,
    )
    marts.rows("delete from raw_shopify.orders where id = %s returning 1", gone)
    marts.dbt("run", "--select", "stg_shopify__orders", "stg_shopify__order_lines")
    after = dict(marts.rows("select shopify_order_id, email from staging.stg_shopify__orders"))
    assert after[changed] == "changed@example.com"
    assert gone not in after
    assert set(after) == set(stamps) - {gone}
    lines = marts.rows(
        "select shopify_order_id, count(*) from staging.stg_shopify__order_lines"
        " where shopify_order_id in (%s, %s, %s) group by 1",
        changed,
        gone,
        emptied,
    )
    assert lines == [(changed, lines_before[changed])]
    restamped = {
        key
        for key, stamp in marts.rows(
            "select shopify_order_id, _loaded_at from staging.stg_shopify__orders"
        )
        if stamp != stamps[key]
    }
    assert restamped == {changed, emptied}


def connection_opens(output: str) -> tuple[int, dict[str, str]]:
    """From dbt's JSON log (``--debug --log-format json``): how many warehouse connections
    its data tests opened (not counting the run's own, e.g. for its relation cache), and
    each data test's status."""
    opened, tests = 0, {}
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        name = event.get("info", {}).get("name")
        node = event.get("data", {}).get("node_info", {})
        if name == "NewConnectionOpening" and node.get("resource_type") == "test":
            opened += 1
        if name == "NodeFinished" and node.get("resource_type") == "test":
            tests[node["unique_id"].split(".")[2]] = node["node_status"]
    return opened, tests


def test_pipeline_data_tests_keep_their_connection_for_the_next_node(
    marts: MartsWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's data tests hand their warehouse connection on to the next node of
    their thread (dbt_omnicanal, dbt_connections): a handful of connections for all of
    fct_orders' tests, where dbt alone opens one per test; a test whose query fails
    (its transaction aborted) is rolled back, fails alone, and the tests after it on the
    same connection pass. Every test runs its query here (none is answered without
    running: dbt_proven_tests), so each is a witness of its connection."""
    from omnicanal.orchestration.dbt_connections import KEEP_TEST_CONNECTIONS_ENV
    from omnicanal.orchestration.dbt_proven_tests import SKIP_PROVEN_TESTS_ENV

    monkeypatch.setenv(SKIP_PROVEN_TESTS_ENV, "0")

    args = ("test", *FCT_ORDERS_TESTS, "--debug", "--log-format", "json")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEEP_TEST_CONNECTIONS_ENV, "0")
        opened_by_dbt, tests = connection_opens(marts.dbt(*args))
    assert len(tests) >= 10
    assert set(tests.values()) == {"pass"}
    assert opened_by_dbt >= len(tests)

    opened, tests = connection_opens(marts.dbt(*args))
    assert set(tests.values()) == {"pass"}
    assert opened <= 2  # one per thread

    # the column the total's tests read is gone: their queries fail, on kept connections
    rename = "alter table marts.fct_orders rename column {} to {}"
    with psycopg.connect(marts.url, autocommit=True) as conn:
        conn.execute(rename.format("total_price", "total_price_gone"))
    try:
        with pytest.raises(AssertionError, match="total_price"):
            marts.dbt(*args)
    finally:
        with psycopg.connect(marts.url, autocommit=True) as conn:
            conn.execute(rename.format("total_price_gone", "total_price"))
    results = json.loads((marts.workdir / "target" / "run_results.json").read_text())
    by_name = {
        r["unique_id"].split(".")[2]: r
        for r in results["results"]
        if r["unique_id"].startswith("test.")
    }
    failed = {name for name, r in by_name.items() if r["status"] != "pass"}
    assert TOTAL_TEST in failed
    assert {by_name[name]["status"] for name in failed} == {"error"}
    assert all("total_price" in name for name in failed)
    # tests of other columns ran after a failed one on its thread (its connection) and
    # passed: an aborted transaction left on a kept connection would fail them too, and
    # they would be among the failed above (another total_price test after the first
    # fails for its own query, so it is no witness either way)
    ended = {name: max(t["completed_at"] for t in r["timing"]) for name, r in by_name.items()}
    after = [
        name
        for name, r in by_name.items()
        for bad in failed
        if name not in failed
        and r["thread_id"] == by_name[bad]["thread_id"]
        and min(t["started_at"] for t in r["timing"]) > ended[bad]
    ]
    assert after
    assert {by_name[name]["status"] for name in after} == {"pass"}


def test_a_pipeline_run_writes_no_log_file_and_an_analysts_does(marts: MartsWarehouse) -> None:
    """The pipeline's dbt runs write no logs/dbt.log (pipeline_env: DBT_LOG_LEVEL_FILE);
    their standard output still names each test; an analyst's run writes the file."""
    logs = marts.workdir / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    output = marts.dbt("test", *FCT_ORDERS_TESTS)
    assert TOTAL_TEST in output
    assert not (logs / "dbt.log").exists() or (logs / "dbt.log").stat().st_size == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DBT_LOG_LEVEL_FILE")
        marts.dbt("test", *FCT_ORDERS_TESTS)
    assert TOTAL_TEST in (logs / "dbt.log").read_text()


#: Tests the warehouse answers after the pipeline's build of fct_orders: the raw orders'
#: primary key (unique, not null) and fct_orders' unique index on its key (a post-hook)
PROVEN = ("source_unique_shopify_orders_id", "source_not_null_shopify_orders_id")
PROVEN_BY_INDEX = "unique_fct_orders_order_key"
#: not_null tests of nullable columns, a unique test of a column without an index, an
#: accepted_values and an expression_is_true test: answered by one count of the rows
#: each would find, per relation
COUNTED = (
    "source_not_null_shopify_orders_created_at",
    "not_null_fct_orders_order_key",
    "unique_fct_orders_shopify_order_id",
    "accepted_values_fct_orders_platform__shopify__square__vtex",
    TOTAL_TEST,
)
#: Tests nothing answers: a not_null test with a `where` of its own, a relationship
UNPROVEN = (
    "not_null_fct_orders_cancelled_at",
    "relationships_fct_orders_customer_id__customer_id__ref_dim_customers_",
)


def test_results(marts: MartsWarehouse, *args: str) -> dict[str, dict]:
    """dbt ``args`` that may fail: every data test's result, by test name."""
    try:
        marts.dbt(*args)
    except AssertionError:
        pass  # a failing test: run_results.json says which
    results = json.loads((marts.workdir / "target" / "run_results.json").read_text())
    return {
        r["unique_id"].split(".")[2]: r
        for r in results["results"]
        if r["unique_id"].startswith("test.")
    }


def test_a_pipeline_build_passes_the_tests_its_warehouse_answers_without_running_them(
    marts: MartsWarehouse,
) -> None:
    """The pipeline's build passes a not_null or unique test that a not-null column or a
    unique index answers (dbt_omnicanal, dbt_proven_tests) without compiling or running
    it; every other test runs. A raw table whose primary key is gone has its unique test
    run, and it fails on a duplicate; an analyst's run (no OMNICANAL_DBT_SKIP_PROVEN_TESTS)
    runs every test."""
    from omnicanal.orchestration.dbt import pipeline_env
    from omnicanal.orchestration.dbt_proven_tests import SKIP_PROVEN_TESTS_ENV

    assert pipeline_env()[SKIP_PROVEN_TESTS_ENV] == "1"
    # a load brings one order again, so the build writes a row of fct_orders: its tests
    # that nothing proves have a row to read (with none, see the test below)
    marts.rows(
        "update raw_shopify.orders set _sdc_batched_at = now()"
        " where id = (select max(id) from raw_shopify.orders) returning 1"
    )
    tests = test_results(marts, "build", *SELECT)
    for name in (*PROVEN, PROVEN_BY_INDEX):
        assert tests[name]["status"] == "pass", name
        assert tests[name]["message"].startswith("not run: "), name
        assert not tests[name]["compiled_code"], name
    assert "orders_pkey" not in tests[PROVEN_BY_INDEX]["message"]
    for name in COUNTED:
        assert tests[name]["status"] == "pass", name
        assert "one count for the relation's" in tests[name]["message"], name
        assert not tests[name]["compiled_code"], name
    for name in UNPROVEN:
        assert tests[name]["status"] == "pass", name
        assert tests[name]["message"] is None, name
        assert tests[name]["compiled_code"], name
    not_run = {name for name, r in tests.items() if (r["message"] or "").startswith("not run")}
    answered = ("not_null", "unique", "accepted_values", "expression_is_true", "matches_pattern")
    assert not_run
    assert all(any(kind in name for kind in answered) for name in not_run), not_run

    # the raw orders lose their primary key and get a duplicate: the unique test runs
    sources = ("--select", "source:omnicanal.shopify.orders")
    with psycopg.connect(marts.url, autocommit=True) as conn:
        (key,) = conn.execute(
            "select conname from pg_constraint"
            " where conrelid = 'raw_shopify.orders'::regclass and contype = 'p'"
        ).fetchone()
        conn.execute(f"alter table raw_shopify.orders drop constraint {key}")
        conn.execute(
            "insert into raw_shopify.orders select * from raw_shopify.orders"
            " where id = (select min(id) from raw_shopify.orders)"
        )
    try:
        tests = test_results(marts, "test", *sources)
        assert tests["source_unique_shopify_orders_id"]["status"] == "fail"
        assert tests["source_unique_shopify_orders_id"]["failures"] == 1
        assert tests["source_unique_shopify_orders_id"]["compiled_code"]
    finally:
        with psycopg.connect(marts.url, autocommit=True) as conn:
            conn.execute(
                "delete from raw_shopify.orders where ctid in (select max(ctid)"
                " from raw_shopify.orders group by id having count(*) > 1)"
            )
            conn.execute(f"alter table raw_shopify.orders add constraint {key} primary key (id)")

    # an analyst's run tests every row itself
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(SKIP_PROVEN_TESTS_ENV)
        tests = test_results(marts, "test", *sources)
    assert tests["source_unique_shopify_orders_id"]["status"] == "pass"
    assert not any((r["message"] or "").startswith("not run") for r in tests.values())
    assert all(r["compiled_code"] for r in tests.values())


def test_a_pipeline_run_does_not_run_the_tests_of_a_model_that_wrote_no_row(
    marts: MartsWarehouse,
) -> None:
    """In the pipeline's scope a test of fct_orders reads the rows the run wrote: with
    none, its not_null and unique tests are not run (dbt_proven_tests); a row the run
    wrote (stamped after the run started) has them all run, and a null in it fails."""
    from omnicanal.orchestration.dbt_proven_tests import SKIP_PROVEN_TESTS_ENV

    checks = ("not_null_fct_orders_total_price", "not_null_fct_orders_platform")
    tests = test_results(marts, "test", *FCT_ORDERS_TESTS)
    for name in checks:
        assert tests[name]["status"] == "pass", name
        assert "no row this run wrote" in tests[name]["message"], name
    # an expression test is answered by the count of its failing rows: none of no row
    assert "no row where (total_price >= 0) is false" in tests[TOTAL_TEST]["message"]
    assert not tests[TOTAL_TEST]["compiled_code"]

    (key,) = marts.rows("select order_key from marts.fct_orders order by order_key limit 1")[0]
    (price, built) = marts.rows(
        "select total_price, built_at from marts.fct_orders where order_key = %s", key
    )[0]
    marts.rows(
        "update marts.fct_orders set total_price = null, built_at = now() + interval '1 day'"
        " where order_key = %s returning 1",
        key,
    )
    try:
        tests = test_results(marts, "test", *FCT_ORDERS_TESTS)
        assert tests["not_null_fct_orders_total_price"]["status"] == "fail"
        assert tests["not_null_fct_orders_total_price"]["failures"] == 1
        assert tests["not_null_fct_orders_total_price"]["compiled_code"]
        # the run wrote a row: platform's test is answered by the count of its nulls
        assert tests["not_null_fct_orders_platform"]["status"] == "pass"
        assert (
            "no null of the rows this run wrote" in tests["not_null_fct_orders_platform"]["message"]
        )
        # an analyst's test reads every row: the null too
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv(SKIP_PROVEN_TESTS_ENV)
            patch.delenv("OMNICANAL_DBT_TEST_SCOPE")
            tests = test_results(marts, "test", *FCT_ORDERS_TESTS)
        assert tests["not_null_fct_orders_total_price"]["failures"] == 1
        assert not any((r["message"] or "").startswith("not run") for r in tests.values())
    finally:
        marts.rows(
            "update marts.fct_orders set total_price = %s, built_at = %s"
            " where order_key = %s returning 1",
            price,
            built,
            key,
        )


def test_a_pipeline_build_counts_a_relations_failing_rows_once_and_runs_a_failing_test(
    marts: MartsWarehouse,
) -> None:
    """The pipeline's not_null, unique, accepted_values and expression_is_true tests of
    one relation are answered by one count of the rows each would find (dbt_proven_tests),
    in the rows the tests read: a test that finds none passes without running; a test
    that finds some runs, and fails with its own count, and no other test fails for it.
    In the pipeline's scope a row an earlier run wrote is not read; without the scope it
    is. A tested column the table lacks leaves the count to the others: its own tests
    run and error."""
    checks = ("channel", "total_price", "currency", "platform", "order_status", "shopify_order_id")
    saved = marts.rows(
        f"select order_key, {', '.join(checks)}, built_at from marts.fct_orders"
        " order by order_key limit 3"
    )
    (first, second, old) = (row[0] for row in saved)
    # negative totals an earlier test of this module left in other rows
    (negative,) = marts.rows(
        "select count(*) from marts.fct_orders where total_price < 0 and order_key not in (%s, %s)",
        first,
        second,
    )[0]
    # two rows as this run's (stamped after it starts): a null channel and total, and
    # a channel not accepted, a negative total and the first one's Shopify order id
    marts.rows(
        "update marts.fct_orders set channel = case when order_key = %s then null"
        " else 'fax' end, total_price = case when order_key = %s then null else -5 end,"
        " shopify_order_id = (select shopify_order_id from marts.fct_orders"
        " where order_key = %s), built_at = now() + interval '1 day'"
        " where order_key in (%s, %s) returning 1",
        first,
        first,
        first,
        first,
        second,
    )
    # an earlier run's row: no currency, a status not accepted
    marts.rows(
        "update marts.fct_orders set currency = null, order_status = 'lost'"
        " where order_key = %s returning 1",
        old,
    )
    accepted = {
        "channel": "accepted_values_fct_orders_channel__web__marketplace__pos",
        "platform": "accepted_values_fct_orders_platform__shopify__square__vtex",
        "order_status": "accepted_values_fct_orders_order_status__open__completed__cancelled",
    }

    def not_null(tests: dict[str, dict], column: str) -> dict:
        return tests[f"not_null_fct_orders_{column}"]

    def failed(result: dict) -> tuple[str, int]:
        """A test that ran (dbt's query, compiled) and failed: its failures."""
        assert not (result["message"] or "").startswith("not run"), result["unique_id"]
        assert result["compiled_code"], result["unique_id"]
        return result["status"], result["failures"]

    try:
        tests = test_results(marts, "test", *FCT_ORDERS_TESTS)
        assert failed(not_null(tests, "channel")) == ("fail", 1)
        assert failed(not_null(tests, "total_price")) == ("fail", 1)
        assert failed(tests[accepted["channel"]]) == ("fail", 1)  # one value not accepted
        assert failed(tests[TOTAL_TEST]) == ("fail", 1)
        assert failed(tests["unique_fct_orders_shopify_order_id"]) == ("fail", 1)
        # the old row is outside the run's scope; the other tests find nothing
        answered = [not_null(tests, c) for c in ("currency", "platform", "order_status")]
        answered += [tests[accepted["platform"]], tests[accepted["order_status"]]]
        answered += [tests["expression_is_true_fct_orders_total_discounts__total_discounts_0"]]
        for result in answered:
            assert result["status"] == "pass", result["unique_id"]
            assert result["message"].startswith("not run: marts.fct_orders"), result["message"]
            assert "of the rows this run wrote (built_at): one count" in result["message"]
            assert not result["compiled_code"], result["unique_id"]
        assert "has no null" in not_null(tests, "currency")["message"]
        assert "has only the accepted values" in tests[accepted["platform"]]["message"]

        # without the scope (as in a full refresh) every row is counted: the old row too
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("OMNICANAL_DBT_TEST_SCOPE")
            tests = test_results(marts, "test", *FCT_ORDERS_TESTS)
            assert failed(not_null(tests, "currency")) == ("fail", 1)
            assert failed(tests["unique_fct_orders_shopify_order_id"]) == ("fail", 1)
            assert failed(tests[accepted["order_status"]]) == ("fail", 1)
            assert failed(not_null(tests, "total_price")) == ("fail", 1)
            assert failed(tests[TOTAL_TEST]) == ("fail", negative + 1)
            for result in (not_null(tests, "platform"), tests[accepted["platform"]]):
                assert result["status"] == "pass", result["unique_id"]
                assert result["message"].startswith("not run: marts.fct_orders")
                assert "rows this run wrote" not in result["message"]

            # a tested column gone: its tests run and error, the count answers the rest
            rename = "alter table marts.fct_orders rename column {} to {}"
            with psycopg.connect(marts.url, autocommit=True) as conn:
                conn.execute(rename.format("order_status", "order_status_gone"))
            try:
                tests = test_results(marts, "test", *FCT_ORDERS_TESTS)
            finally:
                with psycopg.connect(marts.url, autocommit=True) as conn:
                    conn.execute(rename.format("order_status_gone", "order_status"))
            assert not_null(tests, "order_status")["status"] == "error"
            assert tests[accepted["order_status"]]["status"] == "error"
            assert not_null(tests, "platform")["status"] == "pass"
            assert "has no null" in not_null(tests, "platform")["message"]
    finally:
        for key, *values, built in saved:
            marts.rows(
                f"update marts.fct_orders set {', '.join(f'{c} = %s' for c in checks)},"
                " built_at = %s where order_key = %s returning 1",
                *values,
                built,
                key,
            )
