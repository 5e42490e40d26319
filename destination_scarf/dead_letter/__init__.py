"""Rejected records: counted, the first ones logged, kept in a local file and in a dead-letter store.

`rejects.py` is what a sync talks to (`RejectLog`); the rest is the dead-letter store, where rejected records
are written in batches to S3 (or an S3-compatible server): `settings.py` (its option and validation), `s3.py`
(the bounded boto3 client and its errors), `store.py` (batch objects, and the probe `check` runs).

A local rejected-records file is lost with an Airbyte pod, so rejected records can also go to object
storage, configured the way Airbyte's bulk-CDK destinations configure their dead-letter queue
(`object_storage_config`, with `storage_type` None or S3, and the same S3 property names), so that the
platform and users recognise it.

What goes there is the reject log's business: each `add` is one NDJSON line, already composed. This
module only buffers lines and writes them as batch objects, in the folder Airbyte links as a sync's
rejected records (`s3://<bucket>/<bucket_path>/<job id>/`, airbyte-platform's S3ObjectStoragePathResolver):

    <bucket_path>/<job id>/rejected-<attempt>-00001.jsonl

The job id is the configured catalog's `sync_id`, else WORKER_JOB_ID, else one made up (`job_folder`). The
attempt starts with the UTC time the attempt started, so a listing sorts by attempt, and ends with a
random suffix, so that two attempts of one Airbyte job, which share its folder, never write to the same
keys. The `.jsonl` extension (`.jsonl.gz` with GZIP) is the bulk CDK's.

Objects are uncompressed by default, as in the bulk CDK: rejects are few in a healthy sync, and a
plain object opens in the S3 console and pipes into `jq` as it is. The bulk CDK's hidden `compression`
option turns on gzip for users who reject at volume.

Every failure to write raises: `ScarfConfigError` when the user must change something (no such bucket,
access denied, unknown key, wrong region, no credentials), `ScarfTransientError` otherwise (endpoint
down, timeouts, S3 errors). Messages name the bucket and key, never a credential. Waits are bounded:
botocore's connect and read timeouts and a fixed number of attempts.

boto3 is imported only when a store is created or probed: importing this module does not import it.
"""

from destination_scarf.dead_letter.rejects import RejectLog, rejects_path_problem
from destination_scarf.dead_letter.s3 import translate_error
from destination_scarf.dead_letter.settings import (
    CONNECTOR_FOLDER,
    DEFAULT_BATCH_BYTES,
    PROBE_TIMEOUTS,
    S3_REGIONS,
    SPEC_FRAGMENT,
    S3Settings,
    S3Timeouts,
    job_folder,
    new_attempt_id,
    parse_object_storage,
)
from destination_scarf.dead_letter.store import S3DeadLetterStore, bounded, probe

__all__ = [
    "CONNECTOR_FOLDER",
    "DEFAULT_BATCH_BYTES",
    "PROBE_TIMEOUTS",
    "S3_REGIONS",
    "SPEC_FRAGMENT",
    "RejectLog",
    "S3DeadLetterStore",
    "S3Settings",
    "S3Timeouts",
    "bounded",
    "job_folder",
    "new_attempt_id",
    "parse_object_storage",
    "probe",
    "rejects_path_problem",
    "translate_error",
]
