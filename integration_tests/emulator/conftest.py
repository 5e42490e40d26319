"""The emulator's own tests choose their transport: `emulator` is the plain-HTTP emulator here (HTTPS ones come
from `https_emulator` and `start_https_emulator`), and the CA environment is the machine's, not the session's
test CA (a test here shows what a client that was not given the test CA sees)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scarf_emulator import ScarfEmulator
from support import new_plain_emulator


@pytest.fixture
def emulator() -> Iterator[ScarfEmulator]:
    """A fresh plain-HTTP emulator on an ephemeral loopback port, stopped after the test."""
    emu = new_plain_emulator()
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def machine_ca_environment(https_by_default: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE and its kin as the machine set them, not the session's test CA."""
    for name, value in https_by_default.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
