"""The Airbyte CDK's standard destination tests, with scenarios from acceptance-test-config.yml.

The scenario configs point at a local Scarf emulator, so they are written into secrets/ (ignored by
git) when this module starts. The suite's Docker image tests are deselected in pytest.ini: no Docker
engine runs on the project's machines (test_packaging.py reproduces the image's steps instead).
`make connector-test` runs the same suite through the CDK's own command, `airbyte-cdk connector test`.
"""

from __future__ import annotations

import pytest
from airbyte_cdk.test.standard_tests import DestinationTestSuiteBase
from boltons.typeutils import classproperty

from destination_scarf import DestinationScarf
from support import ROOT, new_emulator, write_scenario_configs


@pytest.fixture(scope="module", autouse=True)
def scenario_configs():
    """Start one emulator for the module and write the scenario configs that point at it."""
    emulator = new_emulator()
    emulator.start()
    write_scenario_configs(ROOT / "secrets", emulator)
    yield emulator
    emulator.stop()


class TestDestinationScarf(DestinationTestSuiteBase):
    """Runs the CDK's generic connector tests (check scenarios, config-vs-spec, secrets not leaked)."""

    connector = DestinationScarf

    @classproperty
    def connector_name(cls) -> str:  # the clone's folder name may differ from the connector's
        return "destination-scarf"

    @classmethod
    def get_connector_root_dir(cls):
        return ROOT
