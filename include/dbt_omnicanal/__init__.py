"""omnicanal's dbt plugin: what the pipeline's dbt runs change in dbt itself.

dbt imports every module whose name starts with ``dbt_`` when it starts and creates the
plugins each lists in ``plugins`` (dbt.plugins). This one changes nothing unless the
environment asks for it, as the pipeline's environment does
(``omnicanal.orchestration.dbt.pipeline_env``):

- ``OMNICANAL_DBT_KEEP_TEST_CONNECTIONS=1``: a data test leaves its warehouse connection
  open for its thread's next node (``omnicanal.orchestration.dbt_connections``).
"""

from __future__ import annotations

import os

from dbt.plugins.manager import dbtPlugin

#: Set to 1 by the pipeline's environment (same name as in dbt_connections).
KEEP_TEST_CONNECTIONS_ENV = "OMNICANAL_DBT_KEEP_TEST_CONNECTIONS"


class OmnicanalPipelinePlugin(dbtPlugin):
    def initialize(self) -> None:
        # Every dbt run in this environment loads this module: it does nothing, and
        # imports nothing more, unless asked.
        if os.environ.get(KEEP_TEST_CONNECTIONS_ENV) != "1":
            return
        from omnicanal.orchestration.dbt_connections import keep_test_connections

        keep_test_connections()


plugins = [OmnicanalPipelinePlugin]
