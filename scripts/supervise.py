"""Keep one `make run` process alive: `python -m scripts.supervise NAME -- COMMAND...`.

A child that exits on its own (crash, OOM kill, `kill -9`) is started again after a short backoff,
with a log line saying so; the rest of the stack keeps running. SIGTERM or SIGINT (Ctrl-C, honcho
stopping the stack) is passed to the child and ends the supervisor instead of restarting.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

# A child that stayed up this long is considered healthy again: the backoff starts over.
HEALTHY_AFTER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0


def supervise(name: str, command: list[str]) -> int:
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    backoff = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping:
            return 0
        if time.monotonic() - started >= HEALTHY_AFTER_SECONDS:
            backoff = 1.0
        uptime = time.monotonic() - started
        print(
            f"!! {name} exited with code {code} after {uptime:.1f} s; restarting in {backoff:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline and not stopping:
            time.sleep(0.1)
        if stopping:
            return 0
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        print(f"!! {name} restarting: {' '.join(command)}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m scripts.supervise NAME -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    return supervise(argv[0], argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
