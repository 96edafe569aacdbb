"""omnicanal extract DAGs (Airflow): one per channel with a source, on Assets.

Wiring only; the DAGs are built in omnicanal.orchestration.dags from the channel
registry, so a new channel gets its extract DAG without a change here.
"""

from omnicanal.channels import sources
from omnicanal.orchestration.dags import extract_dag

for _channel in sources():
    globals()[f"extract_{_channel.name}"] = extract_dag(_channel)
