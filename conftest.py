"""Root conftest: loads the Airbyte CDK's standard-test hooks (they must be declared at the root)."""

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]
