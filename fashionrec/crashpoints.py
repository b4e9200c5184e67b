"""Crash points: the places in a write sequence where a test kills the process, to prove nothing is lost.

Every step that replaces a file or switches a link calls :func:`crash_point`
just before it. Normally that costs one environment lookup and does nothing.
Two environment variables turn it into a fault injector for the fault suite
(``tests/faults/``), which runs ``fashionrec index`` in a child process:

``FASHIONREC_CRASH_LOG=PATH``
    append the name of every crash point passed to ``PATH``, one per line
    (how the suite learns how many points a build passes);
``FASHIONREC_CRASH_AT=N``
    kill this process with SIGKILL just before its ``N``-th crash point
    (counted from 1) — the same as ``kill -9`` from outside at that moment:
    no ``finally`` block, no ``atexit`` handler, no flush runs.

They are read on every call, so setting them in a running process works too.
"""

from __future__ import annotations

import os
import signal
import threading

CRASH_AT_ENV = "FASHIONREC_CRASH_AT"
CRASH_LOG_ENV = "FASHIONREC_CRASH_LOG"

_passed = 0
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Mark the point just before a step of a write sequence named ``name`` (e.g. ``"replace manifest.json"``)."""
    global _passed
    at, log = os.environ.get(CRASH_AT_ENV), os.environ.get(CRASH_LOG_ENV)
    if not at and not log:
        return
    with _lock:
        _passed += 1
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"{name}\n")
        if at and at.strip().isdigit() and _passed == int(at):
            os.kill(os.getpid(), signal.SIGKILL)
