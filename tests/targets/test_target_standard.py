"""The singer-sdk standard target tests, each against a fresh database.

Skipped, with the reason:

- ``target_record_missing_key_property`` expects the target to abort with
  ``MissingKeyPropertiesError``. omnicanal's contract is the opposite: a record
  without its key property goes to the quarantine table with the reason and the rest
  of the batch loads (``test_target_quarantine.py`` shows it).
"""

from __future__ import annotations

import pytest
from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.runners import TargetTestRunner

from target_warehouse.target import TargetWarehouse

StandardTests = get_target_test_class(TargetWarehouse, config={})


class TestTargetWarehouseStandard(StandardTests):
    @pytest.fixture
    def runner(self, warehouse_config: dict) -> TargetTestRunner:
        return TargetTestRunner(target_class=TargetWarehouse, config=warehouse_config)

    @pytest.fixture(autouse=True)
    def _skip_contract_conflicts(self, request: pytest.FixtureRequest) -> None:
        if "record_missing_key_property" in request.node.name:
            pytest.skip("quarantined by contract instead of aborting; see module docstring")
