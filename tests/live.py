"""A real API server for tests: uvicorn on a free loopback port, in a daemon thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app, port: int) -> uvicorn.Server:
    """Start ``app`` on 127.0.0.1:``port`` in a daemon thread; returns once it accepts requests.
    Stop it with ``server.should_exit = True``."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test API did not start in 30 s")
        time.sleep(0.05)
    return server
