"""The customer marts rebuilt per changed customer equal a full refresh.

dim_customers, customer_metrics and kpi_conversion are tables over models incremental
per customer: int_customer__golden_records (survivorship over each customer's records),
int_customer__touches (each customer's own actions in the journey, up to ``as_of``) and
int_customer__touch_days (the touches kpi_conversion counts). A world of 60 people, its
commerce channels extracted by their taps, and the models up to those marts built; then,
in the raw tables, a Shopify account renamed, one given another's name, email and phone
(two accounts of one person: a merge), a Square profile given a Shopify account's name
and email (another), a Shopify account erased (LGPD). An incremental run, with ``as_of``
moved back a month, must give those models exactly what a ``--full-refresh`` of them
gives on the same data, while leaving untouched customers' rows as they were; and so
must a second run that only moves ``as_of`` forward again.

The KPI marts and what they are summed from (kpi_conversations per thread,
int_kpi__email_campaign_days per campaign, stg_mailchimp__email_events per load) must
too, after a load that continues a WhatsApp and an Instagram conversation, rates a
ticket late and rates another again (its rating moves to another period), opens an old
campaign's email, and brings a new order of an old customer; with ``as_of`` moved.

stg_vtex__orders, incremental on its orders' load stamp, must follow their profiles too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from marts_world import COMMERCE, ENGAGEMENT, MartsWarehouse, sandbox_warehouse

SEED = 20251201
AS_OF = datetime(2025, 11, 1, 12, 0, 0, tzinfo=UTC)
#: the models rebuilt per changed customer, and the marts built over them
MODELS = (
    "intermediate.int_customer__golden_records",
    "intermediate.int_customer__touches",
    "intermediate.int_customer__touch_days",
    "marts.dim_customers",
    "marts.customer_metrics",
    "marts.kpi_conversion",
)
SELECT = ("--select", "+customer_metrics +kpi_conversion")
#: the KPI marts, on a world with every channel, and what they are summed from
KPI_MODELS = (
    *MODELS,
    "marts.kpi_conversations",
    "marts.kpi_response_times",
    "marts.kpi_csat",
    "marts.kpi_engagement",
    "marts.kpi_repeat_purchase",
    "marts.kpi_customer_value",
    "intermediate.int_kpi__email_campaign_days",
    "intermediate.int_kpi__engagement_days",
    "staging.stg_mailchimp__email_events",
)
KPI_SELECT = ("--select", "+path:models/marts/kpi")


def variables(as_of: datetime) -> tuple[str, str]:
    return ("--vars", json.dumps({"as_of": as_of.isoformat()}))


@pytest.fixture(scope="module")
def marts(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MartsWarehouse]:
    from omnicanal.sandbox import generate_world

    world = generate_world(60, SEED, as_of=AS_OF)
    workdir = tmp_path_factory.mktemp("customer_incremental")
    with sandbox_warehouse(pg_admin_url, workdir, world, COMMERCE) as built:
        built.dbt("seed")
        built.dbt("run", *SELECT, *variables(AS_OF))
        yield built


@pytest.fixture(scope="module")
def kpi_marts(
    pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MartsWarehouse]:
    from omnicanal.sandbox import generate_world

    world = generate_world(60, SEED, as_of=AS_OF)
    workdir = tmp_path_factory.mktemp("kpi_incremental")
    with sandbox_warehouse(pg_admin_url, workdir, world, COMMERCE + ENGAGEMENT) as built:
        built.dbt("seed")
        built.dbt("run", *KPI_SELECT, *variables(AS_OF))
        yield built


def built_at(marts: MartsWarehouse, model: str) -> dict[str, datetime]:
    return dict(
        marts.rows(f"select customer_id, built_at from {model} where customer_id is not null")
    )


def record_customers(marts: MartsWarehouse) -> dict[str, str]:
    return dict(
        marts.rows(
            "select record_key, customer_id from intermediate.int_identity__record_customers"
        )
    )


def full_refresh(
    marts: MartsWarehouse, as_of: datetime, models: tuple[str, ...] = MODELS
) -> dict[str, list[str]]:
    marts.dbt(
        "run",
        "--full-refresh",
        "--select",
        " ".join(model.split(".")[1] for model in models),
        *variables(as_of),
    )
    return marts.contents(models)


def test_incremental_customer_marts_equal_a_full_refresh(marts: MartsWarehouse) -> None:
    owners = record_customers(marts)
    sizes: dict[str, int] = {}
    for owner in owners.values():
        sizes[owner] = sizes.get(owner, 0) + 1
    taken: set[str] = set()

    def pick(source: str, lone: bool) -> str:
        """A record of ``source`` (alone in its customer, or not) in a customer not yet
        picked: its id in the source."""
        for key, customer in sorted(owners.items()):
            if key.startswith(f"{source}:") and (sizes[customer] == 1) == lone:
                if customer not in taken:
                    taken.add(customer)
                    return key.split(":", 1)[1]
        raise AssertionError(f"no {'lone' if lone else 'shared'} {source} record left")

    erased = pick("shopify", lone=True)
    renamed, merged_into = pick("shopify", lone=False), pick("shopify", lone=False)
    twin, twin_of = pick("shopify", lone=False), pick("shopify", lone=False)
    merged = pick("square", lone=False)
    golden_before = built_at(marts, "intermediate.int_customer__golden_records")
    touches_before = built_at(marts, "intermediate.int_customer__touches")

    marts.rows(
        "update raw_shopify.customers set first_name = 'Renomeada', _sdc_batched_at = now()"
        " where id = %s returning 1",
        int(renamed),
    )
    marts.rows(
        "update raw_shopify.customers as twin set first_name = other.first_name,"
        " last_name = other.last_name, default_email_address = other.default_email_address,"
        " default_phone_number = other.default_phone_number, _sdc_batched_at = now()"
        " from raw_shopify.customers as other"
        " where twin.id = %s and other.id = %s returning 1",
        int(twin),
        int(twin_of),
    )
    marts.rows(
        "update raw_square.customers as square set given_name = shopify.first_name,"
        " family_name = shopify.last_name,"
        " email_address = shopify.default_email_address ->> 'email_address',"
        " _sdc_batched_at = now()"
        " from raw_shopify.customers as shopify"
        " where square.id = %s and shopify.id = %s returning 1",
        merged,
        int(merged_into),
    )
    marts.rows("delete from raw_shopify.customers where id = %s returning 1", int(erased))

    moved_back = AS_OF - timedelta(days=30)
    marts.dbt("run", *SELECT, *variables(moved_back))
    incremental = marts.contents(MODELS)
    after = record_customers(marts)
    assert f"shopify:{erased}" not in after
    # the merges moved records between customers
    moved = {k for k, c in after.items() if k in owners and owners[k] != c}
    assert moved, "no record changed customer"
    golden_after = built_at(marts, "intermediate.int_customer__golden_records")
    rebuilt = {c for c, stamp in golden_after.items() if golden_before.get(c) != stamp}
    assert after[f"shopify:{renamed}"] in rebuilt
    involved = ({after[k] for k in moved} | {owners[k] for k in moved}) & set(golden_after)
    assert involved <= rebuilt
    assert owners[f"shopify:{erased}"] not in golden_after  # a customer gone
    assert len(rebuilt) < len(golden_after) / 2  # the others are kept
    touches_after = built_at(marts, "intermediate.int_customer__touches")
    assert any(touches_before.get(c) == stamp for c, stamp in touches_after.items())

    assert incremental == full_refresh(marts, moved_back)

    # as_of forward again, nothing else new: the actions of the month come back
    marts.dbt("run", *SELECT, *variables(AS_OF))
    incremental = marts.contents(MODELS)
    assert incremental == full_refresh(marts, AS_OF)


def test_golden_records_follow_an_email_that_stops_linking(marts: MartsWarehouse) -> None:
    """A customer's records stay as they were, but their email stops linking: three
    other people (other names) now give it too, more than max_people_per_value (3)
    allows. The incremental run weighs that customer again (a record sharing an email
    value the identity run counted again) and gives what a full refresh gives; a rerun
    with nothing new rewrites no golden record."""
    golden = dict(
        marts.rows(
            "select golden.customer_id, golden.email"
            " from intermediate.int_customer__golden_records as golden"
            " where golden.email is not null and cardinality(golden.record_keys) = 1"
            " and golden.record_keys[1] like 'shopify:%%' order by golden.customer_id"
        )
    )
    owner, email = next(iter(golden.items()))
    # three lone Shopify accounts of other customers, three other first names
    borrowers = marts.rows(
        "select min(id) from raw_shopify.customers as raw"
        " where default_email_address ->> 'email_address' <> %s"
        " and first_name is not null and first_name not in"
        " (select first_name from intermediate.int_customer__golden_records"
        "  where customer_id = %s and first_name is not null)"
        " group by first_name order by 1 limit 3",
        email,
        owner,
    )
    assert len(borrowers) == 3
    before = built_at(marts, "intermediate.int_customer__golden_records")
    marts.rows(
        "update raw_shopify.customers set default_email_address ="
        " jsonb_build_object('email_address', cast(%s as text)), _sdc_batched_at = now()"
        " where id = any(%s) returning 1",
        email,
        [b[0] for b in borrowers],
    )
    marts.dbt("run", *SELECT, *variables(AS_OF))
    incremental = marts.contents(MODELS)
    ((now_email,),) = marts.rows(
        "select email from intermediate.int_customer__golden_records where customer_id = %s",
        owner,
    )
    assert now_email != email  # no longer linkable: not theirs
    after = built_at(marts, "intermediate.int_customer__golden_records")
    assert after[owner] != before[owner]
    assert sum(before.get(c) != stamp for c, stamp in after.items()) < len(after) / 2
    assert incremental == full_refresh(marts, AS_OF)

    # nothing new: every golden record stays as the full refresh wrote it
    stamps = built_at(marts, "intermediate.int_customer__golden_records")
    marts.dbt("run", *SELECT, *variables(AS_OF))
    assert built_at(marts, "intermediate.int_customer__golden_records") == stamps
    assert marts.contents(MODELS) == incremental


def test_golden_records_catch_up_on_a_missed_identity_run(marts: MartsWarehouse) -> None:
    """Identity resolution runs alone (the golden records not selected) on a load that
    renames an account and brings a new one: the rename's record change is gone by the
    next run. Identity resolution has then assigned records in two runs since the golden
    records' last build, so they weigh every customer: the rename is not lost."""
    owners = record_customers(marts)
    sizes: dict[str, int] = {}
    for owner in owners.values():
        sizes[owner] = sizes.get(owner, 0) + 1
    # a lone account: its name is its customer's
    renamed = min(
        k.split(":", 1)[1] for k, c in owners.items() if k.startswith("shopify:") and sizes[c] == 1
    )
    marts.rows(
        "update raw_shopify.customers set first_name = 'Esquecida', _sdc_batched_at = now()"
        " where id = %s returning 1",
        int(renamed),
    )

    def new_account() -> None:
        """A new Shopify account: a copy of the first one under a new id (a new record,
        which identity resolution assigns)."""
        copy_raw_row(
            marts,
            "raw_shopify.customers",
            "order by id",
            "'id', (select max(id) + 1 from raw_shopify.customers),"
            " 'admin_graphql_api_id', admin_graphql_api_id || '-copy'",
        )

    new_account()
    marts.dbt("run", "--select", "+int_identity__record_customers", *variables(AS_OF))
    assert len(record_customers(marts)) == len(owners) + 1
    new_account()  # the next load
    marts.dbt("run", *SELECT, *variables(AS_OF))
    incremental = marts.contents(MODELS)
    ((first_name,),) = marts.rows(
        "select first_name from intermediate.int_customer__golden_records"
        " where %s = any(record_keys)",
        f"shopify:{renamed}",
    )
    assert first_name == "Esquecida"
    assert incremental == full_refresh(marts, AS_OF)


def test_vtex_orders_follow_their_profile(marts: MartsWarehouse) -> None:
    """stg_vtex__orders is incremental on the orders' load stamp, but an order's email and
    profile id come from its CL profile: a profile loaded again with a new email rewrites
    its orders, one erased from raw leaves its orders without it; and the model equals
    its full refresh."""
    owned = marts.rows(
        "select vtex_user_id, vtex_order_id from staging.stg_vtex__orders"
        " where vtex_profile_id is not null and is_masked_email order by vtex_order_id"
    )
    users = sorted({user for user, _ in owned})
    assert len(users) >= 2
    changed, erased = users[:2]

    def orders() -> dict[str, dict]:
        return {
            row[0]["vtex_order_id"]: row[0]
            for row in marts.rows("select to_jsonb(t) from staging.stg_vtex__orders t")
        }

    before = orders()
    marts.rows(
        "update raw_vtex.customers set email = 'perfil.novo@example.org', _sdc_batched_at = now()"
        ' where "userId" = %s returning 1',
        changed,
    )
    marts.rows('delete from raw_vtex.customers where "userId" = %s returning 1', erased)
    marts.dbt("run", "--select", "stg_vtex__customers", "stg_vtex__orders")
    incremental = orders()
    for user, order in owned:
        if user == changed:
            assert incremental[order]["email_normalized"] == "perfil.novo@example.org"
        if user == erased:
            assert incremental[order]["vtex_profile_id"] is None
    # nothing was loaded again: the orders keep their load stamps
    assert {key: row["_loaded_at"] for key, row in incremental.items()} == {
        key: row["_loaded_at"] for key, row in before.items()
    }
    marts.dbt("run", "--full-refresh", "--select", "stg_vtex__orders")
    assert orders() == incremental


def test_incremental_kpis_follow_late_and_continued_activity(kpi_marts: MartsWarehouse) -> None:
    """A load that continues conversations, rates tickets late or again, opens an old
    campaign's email, deletes an old call and brings an old customer's new order: the
    incremental run of the KPI marts (and what they are summed from) equals their full
    refresh, and rebuilds only what the load touched."""
    # a WhatsApp number writes again within the 24 hours of its last message: the same
    # conversation goes on (its resolution waits for a reply)
    copy_raw_row(
        kpi_marts,
        "raw_whatsapp.messages",
        "order by cast(timestamp as bigint) desc",
        "'seq', (select max(seq) + 1 from raw_whatsapp.messages), 'id', 'wamid.late',"
        " 'event_id', 'wamid.late', 'received_at', now(),"
        " 'timestamp', cast(cast(timestamp as bigint) + 3600 as text),"
        " 'text', jsonb_build_object('body', 'e agora?')",
    )
    # the business answers an Instagram thread again, now
    copy_raw_row(
        kpi_marts,
        "raw_instagram.messages",
        "where \"from\" ->> 'id' = ig_user_id order by created_time desc",
        "'id', 'late-dm', 'created_time', now(), 'message', 'resolvido'",
    )
    # a ticket rated good is rated bad now (another period); an offered survey is
    # answered now
    rerated = kpi_marts.rows(
        "update raw_zendesk.satisfaction_ratings set score = 'bad',"
        " updated_at = now(), _sdc_batched_at = now()"
        " where id = (select min(id) from raw_zendesk.satisfaction_ratings"
        " where score = 'good') returning id"
    )
    late = kpi_marts.rows(
        "update raw_zendesk.satisfaction_ratings set score = 'good',"
        " updated_at = now(), _sdc_batched_at = now()"
        " where id = (select min(id) from raw_zendesk.satisfaction_ratings"
        " where score not in ('good', 'bad')) returning id"
    )
    assert rerated and late
    # a solved ticket's metrics say it was solved a day later (the ticket itself is not
    # loaded again, so none of its interactions changes)
    (solved_ticket,) = kpi_marts.rows(
        "update raw_zendesk.ticket_metrics set solved_at = solved_at + interval '1 day',"
        " _sdc_batched_at = now() where id = (select min(metrics.id)"
        " from raw_zendesk.ticket_metrics as metrics"
        " inner join raw_zendesk.tickets on metrics.ticket_id = tickets.id"
        " where metrics.solved_at is not null and tickets.status in ('solved', 'closed'))"
        " returning ticket_id"
    )
    # an open of the oldest campaign's email, an hour after the newest activity
    copy_raw_row(
        kpi_marts,
        "raw_mailchimp.email_activity",
        "where action = 'sent' and not exists (select from raw_mailchimp.email_activity"
        " as opened where opened.action = 'open'"
        " and opened.campaign_id = raw.campaign_id and opened.email_id = raw.email_id)"
        " order by timestamp, email_id",
        "'action', 'open', 'timestamp',"
        " (select max(timestamp) from raw_mailchimp.email_activity) + interval '1 hour'",
    )
    # an old customer's new order, placed a week before as_of, loaded now
    copy_raw_row(
        kpi_marts,
        "raw_shopify.orders",
        "where customer is not null and cancelled_at is null order by created_at",
        "'id', (select max(id) + 1 from raw_shopify.orders), 'name', name || '-late',"
        " 'admin_graphql_api_id', admin_graphql_api_id || '-late',"
        f" 'created_at', timestamptz '{AS_OF - timedelta(days=7)}',"
        f" 'processed_at', timestamptz '{AS_OF - timedelta(days=7)}',"
        " 'updated_at', (select max(updated_at) from raw_shopify.orders) + interval '1 minute'",
    )
    # the oldest call a customer made is deleted in HubSpot (soft-deleted by the loader):
    # no row is left to say which day lost it, only int_kpi__engagement_days' digests do
    deleted_call = kpi_marts.rows(
        "update raw_hubspot.calls set _sdc_deleted_at = now(), _sdc_batched_at = now()"
        " where id = (select id from raw_hubspot.calls"
        " where properties ->> 'hs_call_direction' = 'INBOUND'"
        " order by properties ->> 'hs_timestamp', id limit 1) returning id"
    )
    assert deleted_call
    threads_before = built_at_of(kpi_marts, "marts.kpi_conversations", "thread_key")
    campaigns_before = built_at_of(
        kpi_marts, "intermediate.int_kpi__email_campaign_days", "campaign_id"
    )
    periods = "grain || ':' || period_start"
    periods_before = built_at_of(kpi_marts, "marts.kpi_engagement", periods)

    moved = AS_OF + timedelta(days=40)
    kpi_marts.dbt("run", *KPI_SELECT, *variables(moved))
    incremental = kpi_marts.contents(KPI_MODELS)
    threads_after = built_at_of(kpi_marts, "marts.kpi_conversations", "thread_key")
    rebuilt = {k for k, stamp in threads_after.items() if threads_before.get(k) != stamp}
    assert any(k.startswith("whatsapp:") for k in rebuilt)
    assert any(k.startswith("instagram:") for k in rebuilt)
    assert f"support:{solved_ticket[0]}" in rebuilt
    assert len(rebuilt) < len(threads_after) / 2  # the other threads are kept
    campaigns_after = built_at_of(
        kpi_marts, "intermediate.int_kpi__email_campaign_days", "campaign_id"
    )
    assert (
        0
        < sum(campaigns_before.get(c) != campaigns_after[c] for c in campaigns_after)
        < len(campaigns_after)
    )
    # kpi_engagement: the periods of the days that changed (the call's among them) only
    periods_after = built_at_of(kpi_marts, "marts.kpi_engagement", periods)
    assert (
        0
        < sum(periods_before.get(p) != periods_after[p] for p in periods_after)
        < len(periods_after) / 2
    )
    assert incremental == full_refresh(kpi_marts, moved, KPI_MODELS)


def built_at_of(marts: MartsWarehouse, model: str, key: str) -> dict[str, datetime]:
    return dict(marts.rows(f"select {key}, max(built_at) from {model} group by {key}"))


def copy_raw_row(marts: MartsWarehouse, table: str, pick: str, changes: str) -> None:
    """Insert a copy of the first row of ``table`` (``raw``) in the order of ``pick``,
    with ``changes`` (jsonb_build_object arguments over it), loaded now."""
    marts.rows(
        f"insert into {table} select (jsonb_populate_record(null::{table}, to_jsonb(raw)"
        f" || jsonb_build_object({changes}, '_sdc_extracted_at', now(),"
        f" '_sdc_received_at', now(), '_sdc_batched_at', now()))).*"
        f" from {table} as raw {pick} limit 1 returning 1"
    )
