"""Tests of destination_scarf/mapping/: records to event lines, pure."""
