# The connector image, on the base image Airbyte's own Python connectors declare in metadata.yaml
# (the same reference, pinned by digest so every build starts from the same bytes). That base brings
# what Airbyte expects of a Python connector: Python 3.11 (the Python the locks are resolved for and
# CI runs), pip in /usr/local, UTC, /airbyte, and the non-root user `airbyte` (uid 1000), which this
# file must therefore not create again.
#
# The dependencies come from requirements.lock, each checked against its hash; the package itself
# then goes in without dependencies, so nothing outside the lock is installed, and without build
# isolation, so it is built by the locked setuptools. The files come in through bind mounts of the
# build context (BuildKit, Docker's default builder since 23.0), which .dockerignore keeps to what
# the install needs: the lock, the sources and setuptools' build/ and *.egg-info never reach a layer,
# and --no-cache-dir keeps pip's cache (the base sets PIP_CACHE_DIR) empty.
FROM docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

LABEL io.airbyte.name=airbyte/destination-scarf
LABEL io.airbyte.version=0.1.0

WORKDIR /airbyte/integration_code
# Its own step, with only the lock mounted, so this layer is reused until the lock changes.
RUN --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock
# rw: pip builds in the source tree; what it writes there is discarded with the mount.
RUN --mount=type=bind,target=/tmp/destination-scarf,rw \
    pip install --no-cache-dir --no-deps --no-build-isolation /tmp/destination-scarf

USER airbyte
ENV AIRBYTE_ENTRYPOINT="destination-scarf"
ENTRYPOINT ["destination-scarf"]
