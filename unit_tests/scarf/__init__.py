"""Tests of destination_scarf/scarf/'s decisions: an import's life on a scripted Scarf, the slots, the policies."""
