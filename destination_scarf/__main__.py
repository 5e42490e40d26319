"""`python -m destination_scarf ...`: the same as the `destination-scarf` console script."""

from destination_scarf.airbyte.cli import run

run()
