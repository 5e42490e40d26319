"""Fixtures for the integration tests; the builders they use live in support.py."""

from __future__ import annotations

import pytest

from support import *  # noqa: F403  (re-exported: tests may import builders from either module)
from support import new_emulator


@pytest.fixture
def emulator():
    """A fresh emulator on an ephemeral loopback port, stopped after the test."""
    emu = new_emulator()
    emu.start()
    yield emu
    emu.stop()
