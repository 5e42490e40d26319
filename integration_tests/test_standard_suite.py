"""The Airbyte CDK's standard destination tests, with scenarios from acceptance-test-config.yml.

The scenario configs point at a local Scarf emulator, so they are written into secrets/ (ignored by
git) when this module starts. The suite's Docker image tests are deselected in pytest.ini: no Docker
engine runs on the project's machines (test_packaging.py reproduces the image's steps instead).
"""

from __future__ import annotations

import pytest
from airbyte_cdk.test.standard_tests import DestinationTestSuiteBase
from boltons.typeutils import classproperty

from destination_scarf import DestinationScarf
from support import OWNER, PACKAGE, ROOT, TOKEN, new_emulator, write_json

UNKNOWN_PACKAGE = "99999999-9999-4999-8999-999999999999"


@pytest.fixture(scope="module", autouse=True)
def scenario_configs():
    """Start one emulator for the module and write the scenario configs that point at it."""
    emulator = new_emulator()
    emulator.start()
    secrets = ROOT / "secrets"
    secrets.mkdir(exist_ok=True)
    good = {"api_token": TOKEN, "owner": OWNER, "api_url": emulator.url, "target": {"target_type": "multi_artifact"}}
    write_json(secrets / "config.json", good)
    write_json(secrets / "config_package.json", {**good, "target": {"target_type": "package", "package_id": PACKAGE}})
    write_json(secrets / "invalid_token_config.json", {**good, "api_token": "wrong-token"})
    write_json(secrets / "unknown_package_config.json",
               {**good, "target": {"target_type": "package", "package_id": UNKNOWN_PACKAGE}})
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
