"""The CDK's secret filter, without importing the CDK.

Every LOG and TRACE passes through `filter_secrets`, which replaces each registered secret (the
config's `airbyte_secret` fields, and the token as it is used) with "****". That is the CDK's own
function, from its `airbyte_cdk/utils/airbyte_secrets_utils.py`. Importing it the usual way would run
the CDK package's `__init__`, which imports the whole CDK (about a second and 45 MB) that `write` does
not otherwise need. So, unless the CDK is already loaded in this process (then its module is used, and
there is one registry of secrets), that one file is loaded on its own, under a name of ours.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

_CDK_MODULE = "airbyte_cdk.utils.airbyte_secrets_utils"
_module: ModuleType | None = None


def _secrets_utils() -> ModuleType:
    global _module
    if _module is None:
        loaded = sys.modules.get(_CDK_MODULE)
        _module = loaded if loaded is not None else _load_alone()
    return _module


def _load_alone() -> ModuleType:
    package = importlib.util.find_spec("airbyte_cdk")  # finds the package without running its __init__
    if package is None or not package.submodule_search_locations:
        raise ImportError("airbyte-cdk is not installed")
    path = Path(next(iter(package.submodule_search_locations))) / "utils" / "airbyte_secrets_utils.py"
    spec = importlib.util.spec_from_file_location("destination_scarf._cdk_secrets_utils", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_file() -> str:
    """Where the filter in use comes from (tests check that it is the CDK's)."""
    return str(_secrets_utils().__file__)


def filter_secrets(text: str) -> str:
    return str(_secrets_utils().filter_secrets(text))


def update_secrets(secrets: list[str]) -> None:
    _secrets_utils().update_secrets(secrets)


def add_to_secrets(secret: str) -> None:
    _secrets_utils().add_to_secrets(secret)


def get_secrets(connection_specification: dict[str, Any], config: Any) -> list[Any]:
    return list(_secrets_utils().get_secrets(connection_specification, config))


def register_config_secrets(raw_config: Any) -> None:
    """Register the config's secrets (per spec.json's `airbyte_secret` fields), and each one stripped of
    surrounding whitespace too, as the connector uses it, before anything can print them."""
    from destination_scarf.options import spec

    secrets = get_secrets(spec()["connectionSpecification"], raw_config)
    update_secrets(secrets)
    for secret in secrets:
        if isinstance(secret, str) and secret.strip() and secret.strip() != secret:
            add_to_secrets(secret.strip())
