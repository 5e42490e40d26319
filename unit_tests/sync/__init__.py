"""Tests of destination_scarf/sync/'s pure parts: the state rule, the catalog."""
