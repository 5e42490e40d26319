"""The Airbyte edge's commands, run as Airbyte and people run them."""
