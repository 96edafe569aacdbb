"""The Airflow Assets of the warehouse: one per raw table and one per sync model.

Extract DAGs update the raw tables' assets, the dbt DAG is scheduled on them and
updates the sync models' assets, and each activation DAG is scheduled on its sync
models' assets: data-aware scheduling that follows the flow of the data. Names read
like the tables (``raw_shopify.customers``), so the UI's asset graph is the warehouse.
"""

from __future__ import annotations

from airflow.sdk import Asset

#: The URI scheme of omnicanal's warehouse tables (the warehouse may be any Postgres,
#: so the URI names the table, not a server).
SCHEME = "omnicanal"


def table_asset(schema: str, table: str) -> Asset:
    return Asset(name=f"{schema}.{table}", uri=f"{SCHEME}://warehouse/{schema}/{table}")
