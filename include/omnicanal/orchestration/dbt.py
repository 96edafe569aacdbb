"""dbt invocations and the Cosmos configuration, both from the settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from omnicanal.config import Settings

DBT_PROFILE = "omnicanal"
DBT_TARGET = "warehouse"


def dbt_env(settings: Settings) -> dict[str, str]:
    """What dbt_project/profiles.yml reads: the warehouse's parts and the threads."""
    return {
        **settings.warehouse().libpq_env(),
        "OMNICANAL_DBT_THREADS": str(settings.dbt_threads),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        "DBT_PROFILES_DIR": str(settings.dbt_project_dir),
        "DBT_PROJECT_DIR": str(settings.dbt_project_dir),
    }


def dbt_executable() -> str:
    return str(Path(sys.executable).parent / "dbt")


def run_dbt(settings: Settings, args: list[str]) -> int:
    """Run the dbt CLI on the project with the warehouse's profile; returns its exit code."""
    env = {**os.environ, **dbt_env(settings)}
    return subprocess.run(
        [dbt_executable(), *args], env=env, cwd=settings.dbt_project_dir
    ).returncode


def cosmos_configs(settings: Settings) -> dict:
    """Keyword arguments for Cosmos's DbtTaskGroup: project, profile, execution, render."""
    from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import InvocationMode, LoadMode, TestIndirectSelection

    # Cosmos looks for `dbt` on PATH even when it runs dbt in-process; the venv that
    # runs Airflow is the one with dbt, so make sure its bin folder is on PATH.
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    env = dbt_env(settings)
    return {
        "project_config": ProjectConfig(
            dbt_project_path=settings.dbt_project_dir, env_vars=env, install_dbt_deps=False
        ),
        "profile_config": ProfileConfig(
            profile_name=DBT_PROFILE,
            target_name=DBT_TARGET,
            profiles_yml_filepath=settings.dbt_project_dir / "profiles.yml",
        ),
        # dbt runs in-process (dbtRunner): no subprocess start-up per model.
        # Cautious: a model's test task runs only the tests of that model; tests that
        # span several models get their own task after all of them (detached below).
        "execution_config": ExecutionConfig(
            invocation_mode=InvocationMode.DBT_RUNNER,
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
        ),
        "render_config": RenderConfig(
            load_method=LoadMode.DBT_LS,
            # Cosmos compares this with the dbt it finds on PATH; pass that same one.
            dbt_executable_path=shutil.which("dbt") or dbt_executable(),
            enable_mock_profile=False,
            should_detach_multiple_parents_tests=True,
            emit_datasets=False,
        ),
    }
