"""omnicanal pipeline (Airflow): everything now — extract every source, dbt, every sync.

Wiring only; the DAG is built in omnicanal.orchestration.dags (see its docstring).
"""

from omnicanal.orchestration.dags import dbt_project_dir, pipeline_dag

dag = pipeline_dag(dbt_project_dir(__file__))
