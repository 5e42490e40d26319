"""`python -m destination_scarf ...`: the same as the `destination-scarf` console script."""

from destination_scarf.cli import run

run()
