"""The environment Airflow runs in, derived from omnicanal's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omnicanal.config import Settings


def airflow_env(settings: Settings) -> dict[str, str]:
    """Variables that point Airflow at this project: its home, DAGs, no examples, and
    the warehouse connection the dbt tasks' profile comes from."""
    from omnicanal.orchestration.dbt import WAREHOUSE_CONN_ID
    from omnicanal.warehouse import url

    home = settings.airflow_home
    # Airflow starts its own components (`airflow standalone`) and Cosmos finds dbt by
    # name: this venv's bin folder must come first on PATH.
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if venv_bin not in path.split(os.pathsep):
        path = venv_bin + os.pathsep + path
    return {
        "PATH": path,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Cosmos runs `dbt ls` the first time it parses a dbt DAG file: ~40 s on two
        # busy cores, over the 30 s / 50 s defaults that would turn it into an import
        # error (in `make ui` as in the test cluster).
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "180",
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "240",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": os.environ.get("AIRFLOW__CORE__UNIT_TEST_MODE", "False"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get(
            "AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"
        ),
        # Cosmos caches `dbt ls` in Airflow Variables; keep rendering fast and local.
        "AIRFLOW__COSMOS__ENABLE_CACHE": "True",
        "AIRFLOW__COSMOS__PROPAGATE_LOGS": "False",
        # The dbt producer task (watcher mode) would otherwise rewrite a Variable holding
        # every result so far after each of its ~500 XCom pushes: quadratic, and ~half
        # of the dbt DAG's overhead. Cosmos still writes it once if the producer fails.
        "AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY": "False",
        # No telemetry: the pipeline runs on customer data, often offline.
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "DO_NOT_TRACK": "1",
        "SCARF_NO_ANALYTICS": "1",
        f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}": url(settings).url(),
        "OMNICANAL_PROJECT_DIR": str(settings.project_dir),
        "OMNICANAL_HOME": str(settings.home),
    }


def migrate_metadata_db(settings: Settings) -> None:
    """``airflow db migrate`` once; later calls are skipped by a marker file."""
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    marker = home / ".migrated"
    db = home / "airflow.db"
    if marker.exists() and db.exists():
        return
    env = {**os.environ, **airflow_env(settings)}
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
    marker.write_text("ok\n")
