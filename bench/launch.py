"""Run one command and report its own wall time, CPU time and peak RSS on a file descriptor (JSON).

Why a launcher: on Linux a child's peak RSS (`ru_maxrss`) starts from its parent's at the moment it was
forked, and the benchmark's own process holds generated inputs (48 to 68 MB), so a child spawned by it
directly reports at least that. Started with `python -S`, this launcher stays under 10 MB, and the command it
forks starts from that. Usage: `python -S launch.py FD COMMAND...`; stdin and stdout pass through.
"""

import json
import os
import sys
import time


def main() -> None:
    report = int(sys.argv[1])
    command = sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(report)
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    with os.fdopen(report, "w") as out:
        json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "max_rss_kb": usage.ru_maxrss,
                   "returncode": os.waitstatus_to_exitcode(status)}, out)


if __name__ == "__main__":
    main()
