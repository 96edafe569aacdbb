"""omnicanal transform DAG (Airflow): dbt through Cosmos when a raw table changes.

Wiring only; the DAG is built in omnicanal.orchestration.dags.
"""

from omnicanal.orchestration.dags import dbt_project_dir, transform_dag

dag = transform_dag(dbt_project_dir(__file__))
