# The connector image, built the way Airbyte's Python connectors are: a slim Python base, the package
# installed from this repo, a non-root user, and `destination-scarf` as the entrypoint.
# The emulator, tests, demo and benchmark are not copied: only what `pip install .` needs.
FROM python:3.11-slim

LABEL io.airbyte.name=airbyte/destination-scarf
LABEL io.airbyte.version=0.1.0

WORKDIR /airbyte/integration_code
COPY pyproject.toml setup.py ./
COPY destination_scarf ./destination_scarf
RUN pip install --no-cache-dir . && useradd --create-home --uid 1000 airbyte

USER airbyte
ENV AIRBYTE_ENTRYPOINT="destination-scarf"
ENTRYPOINT ["destination-scarf"]
