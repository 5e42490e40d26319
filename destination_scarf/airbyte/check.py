"""`check`: prove that a sync with this config can start, and say exactly what to fix when it cannot."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from destination_scarf.airbyte.discover import check_object_names
from destination_scarf.config import ScarfConfig, parse_config
from destination_scarf.dead_letter import bounded, probe, rejects_path_problem
from destination_scarf.errors import ScarfConfigError, ScarfError, SyncCancelled
from destination_scarf.mapping.artifacts import name_constants
from destination_scarf.options import SCARF_MAX_ACTIVE_IMPORTS
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.scarf.retry import RetryPolicy
from destination_scarf.sync.artifact_names import check_constant_names, read_artifact_names
from destination_scarf.sync.catalog import StreamInfo

if TYPE_CHECKING:  # for the annotation only: check imports the CDK when it runs, write never does
    from airbyte_cdk.models import AirbyteConnectionStatus

#: `check` runs while a user waits in the UI: a few quick retries, then a clear answer.
CHECK_RETRY = RetryPolicy(max_attempts=3, backoff_initial_seconds=0.5, max_total_seconds=10.0)


def run_check(raw_config: Mapping[str, Any], *, logger: logging.Logger,
              retry: RetryPolicy = CHECK_RETRY) -> AirbyteConnectionStatus:
    """Validate the config, then ask the API about token, owner, target and free import slots, and whether the
    package and tracking pixel names given as constants in `field_mappings` name one artifact each."""
    from airbyte_cdk.models import AirbyteConnectionStatus, Status  # the CDK is for check, not for write

    try:
        config = parse_config(raw_config)
        check_local_paths(config)
        if config.dead_letter is not None:
            probe(config.dead_letter)  # a wrong bucket, region or credential fails here, in seconds
        with ScarfClient.from_config(config, retry=retry, read_timeout=10.0, exchange_timeout=10.0) as client:
            busy = _probe(client, config)
            if any(name_constants(config.mapping)):
                names, _ = read_artifact_names(client, config, budget_seconds=retry.max_total_seconds,
                                                attempts=retry.max_attempts)
                check_constant_names(config.mapping, names)
    except ScarfError as error:
        return AirbyteConnectionStatus(status=Status.FAILED, message=str(error))
    if busy >= SCARF_MAX_ACTIVE_IMPORTS:
        message = (
            f"Connected to owner '{config.owner}'. Note: all {SCARF_MAX_ACTIVE_IMPORTS} import slots of the account "
            f"are busy right now ({busy} active imports); a sync will wait up to slot_wait_minutes for a free one."
        )
        logger.warning(message)
        return AirbyteConnectionStatus(status=Status.SUCCEEDED, message=message)
    return AirbyteConnectionStatus(status=Status.SUCCEEDED)


def _probe(client: ScarfClient, config: ScarfConfig) -> int:
    """Cheap reads that exercise token, owner and target; returns the number of active imports seen."""
    active = client.list_imports(statuses=["importing"], per_page=100)
    if config.target.kind == "package" and config.target.artifact_id:
        client.get_package(config.target.artifact_id)
    elif config.target.kind == "tracking_pixel" and config.target.artifact_id:
        client.get_tracking_pixel(config.target.artifact_id)
    return len(active)


def check_before_write(config: ScarfConfig, streams: list[StreamInfo]) -> None:
    """What `write` refuses before any call to Scarf, on the command line and the programmatic path alike."""
    check_object_names(streams, config.target)
    check_local_paths(config)


def check_local_paths(config: ScarfConfig) -> None:
    """The rejected-records file must be usable: checked before any call to Scarf, and before input is read."""
    problem = rejects_path_problem(config.rejected_records_path) if config.rejected_records_path else None
    if problem:
        raise ScarfConfigError(f"The destination's configuration is not valid: {problem}.")


#: How long `write`'s probe of the dead-letter store may take in all (its own timeouts and attempts bound each try).
PREFLIGHT_STORE_SECONDS = 60.0


def preflight(client: ScarfClient, config: ScarfConfig, *, cancelled: threading.Event | None = None) -> None:
    """Before `write` reads any input: what a wrong token or owner, or a dead-letter store that cannot be
    written, fails in seconds (instead of at the first upload, or the first rejected record). Wakes on a cancel."""
    verify_access(client)
    store = config.dead_letter
    if store is not None:
        bounded(lambda: probe(store), doing=f"checking the rejected-records store {store.describe()}",
                seconds=PREFLIGHT_STORE_SECONDS, cancelled=cancelled,
                undone="no input was read yet, so the next sync starts from the last saved state")


def verify_access(client: ScarfClient, *, budget_seconds: float = 60.0) -> None:
    """Before `write` reads any input: one cheap call that a wrong token or owner fails at once.

    Without it a wrong token would show only at the first upload, which on a slow source can be minutes
    into the sync. Only what retrying cannot fix stops the sync here (401, 403, 404); an outage is left
    to the sync's own retries, which ride it out.
    """
    try:
        client.list_imports(statuses=["importing"], per_page=1, budget_seconds=budget_seconds, kind="pre-flight")
    except (ScarfConfigError, SyncCancelled):
        raise
    except ScarfError as error:
        logging.getLogger("airbyte").warning("Could not check the token and owner before reading input (%s); "
                                             "going on: the sync's own retries ride out an outage.", error.message)
