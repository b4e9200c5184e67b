"""A bounded network probe, so that offline machines fail fast with a useful message."""

from __future__ import annotations

import socket
import threading

PROBE_TIMEOUT_S = 5.0


def reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    The connect runs on a daemon thread so that a hanging DNS lookup (which
    ``socket``'s own timeout does not cover) cannot hold the caller longer.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result and result[0])
