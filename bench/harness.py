"""Running and measuring the three programs on the same input, as subprocesses, against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWNER = "bench-org"
TOKEN = "bench-token"
LAUNCHER = Path(__file__).resolve().parent / "launch.py"


@dataclass
class Measurement:
    wall: float
    cpu: float
    max_rss_mb: float
    returncode: int
    stdout: bytes
    emulator_cpu: float | None = None  # CPU seconds the emulator used meanwhile (A only)
    wire_bytes: int | None = None  # bytes of import bodies the emulator received meanwhile (A, when asked)

    def states(self) -> int:
        return sum(1 for line in self.stdout.splitlines() if line.startswith(b'{"type":"STATE"'))


def measure(command: list[str], stdin_path: Path, *, cwd: Path = ROOT) -> Measurement:
    """Run `command` with the file on stdin; its wall time, own CPU time and peak RSS, as `launch.py` (a small
    process between this one and the command, so that the command's peak RSS does not start from ours)."""
    read_end, write_end = os.pipe()
    with open(stdin_path, "rb") as stdin:
        process = subprocess.Popen([sys.executable, "-S", str(LAUNCHER), str(write_end), *command], stdin=stdin,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd, pass_fds=(write_end,))
        os.close(write_end)
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.append(process.stdout.read()))
        reader.start()
        with os.fdopen(read_end, "rb") as report:
            usage = report.read()
        process.wait()
        reader.join()
    if process.returncode != 0 or not usage:
        raise RuntimeError(f"the launcher failed (exit {process.returncode}) for {command[:3]}")
    found = json.loads(usage)
    return Measurement(wall=found["wall"], cpu=found["cpu"], max_rss_mb=found["max_rss_kb"] / 1024,
                       returncode=found["returncode"], stdout=b"".join(chunks))


class Emulator:
    """The emulator as a subprocess (so it is not measured as part of the connector)."""

    def __init__(self, *, packages: tuple[str, ...], rate: float | None = None, store: bool = False,
                 import_seconds: float | None = None) -> None:
        command = [sys.executable, "-m", "scarf_emulator", "--port", "0", "--owner", OWNER, "--token", TOKEN,
                   "--max-active", "15"]
        for package in packages:
            command += ["--package", package]
        if rate:
            command += ["--rate", str(rate)]
        if import_seconds:
            command += ["--import-seconds", str(import_seconds)]
        if not store:
            command.append("--no-store")
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        if not line.startswith("SCARF_EMULATOR_URL="):
            self.process.kill()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.url = line.split("=", 1)[1]

    def cpu_seconds(self) -> float | None:
        """CPU time the emulator process has used so far (Linux /proc), or None where that is not available."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in ticks

    def stats(self) -> dict:
        return json.load(urllib.request.urlopen(f"{self.url}/_emulator/stats?owner={OWNER}"))

    def calls(self) -> dict:
        """API calls so far, by kind and per import (see scarf_emulator.recording.call_counts)."""
        return json.load(urllib.request.urlopen(f"{self.url}/_emulator/calls?owner={OWNER}"))

    def imports(self) -> list[dict]:
        """Every import of the owner, oldest first, as Scarf would report it."""
        return json.load(urllib.request.urlopen(f"{self.url}/_emulator/imports?owner={OWNER}"))

    def import_bytes(self) -> int:
        requests = json.load(urllib.request.urlopen(f"{self.url}/_emulator/requests"))
        return sum(r.get("body_bytes_len", 0) for r in requests if r.get("method") == "POST")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
