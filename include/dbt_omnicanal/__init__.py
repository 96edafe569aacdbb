"""omnicanal's dbt plugin: what the pipeline's dbt runs change in dbt itself.

dbt imports every module whose name starts with ``dbt_`` when it starts and creates the
plugins each lists in ``plugins`` (dbt.plugins). This one changes nothing unless the
environment asks for it, as the pipeline's environment does
(``omnicanal.orchestration.dbt.pipeline_env``):

- ``OMNICANAL_DBT_KEEP_TEST_CONNECTIONS=1``: a data test leaves its warehouse connection
  open for its thread's next node (``omnicanal.orchestration.dbt_connections``);
- ``OMNICANAL_DBT_SKIP_PROVEN_TESTS=1``: a data test whose answer the warehouse already
  gives (``not_null`` on a ``not null`` column, ``unique`` on a uniquely indexed one, or
  either on a model of which the pipeline's scope reads no row) passes without running,
  and the ``not_null``, ``unique``, ``accepted_values``, ``expression_is_true`` and
  ``matches_pattern`` tests of one relation are answered by one count of the rows they
  read: a test whose check counts none passes, one that counts any runs as dbt runs it
  (``omnicanal.orchestration.dbt_proven_tests``).
"""

from __future__ import annotations

import os

from dbt.plugins.manager import dbtPlugin

#: Set to 1 by the pipeline's environment (same names as in dbt_connections and
#: dbt_proven_tests).
KEEP_TEST_CONNECTIONS_ENV = "OMNICANAL_DBT_KEEP_TEST_CONNECTIONS"
SKIP_PROVEN_TESTS_ENV = "OMNICANAL_DBT_SKIP_PROVEN_TESTS"


class OmnicanalPipelinePlugin(dbtPlugin):
    def initialize(self) -> None:
        # Every dbt run in this environment loads this module: it does nothing, and
        # imports nothing more, unless asked.
        if os.environ.get(KEEP_TEST_CONNECTIONS_ENV) == "1":
            from omnicanal.orchestration.dbt_connections import keep_test_connections

            keep_test_connections()
        if os.environ.get(SKIP_PROVEN_TESTS_ENV) == "1":
            from omnicanal.orchestration.dbt_proven_tests import skip_proven_tests

            skip_proven_tests()


plugins = [OmnicanalPipelinePlugin]
