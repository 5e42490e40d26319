"""Thin shim so `python main.py spec|check|write ...` works from a checkout, as in Airbyte's connectors."""

from destination_scarf.airbyte.cli import run

if __name__ == "__main__":
    run()
