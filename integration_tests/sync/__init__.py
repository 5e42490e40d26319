"""The sync end to end against the emulator: the state rule, failures, reliability."""
