"""omnicanal activation DAGs (Airflow): one per destination, on its sync models' Assets.

Wiring only; the DAGs are built in omnicanal.orchestration.dags from the sync exposures
in the dbt project, so a new sync or destination needs no change here.
"""

from omnicanal.orchestration.dags import activation_dags, dbt_project_dir

for _dag in activation_dags(dbt_project_dir(__file__)):
    globals()[_dag.dag_id] = _dag
