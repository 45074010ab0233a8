"""``opsloop ui``: start the Streamlit app against an opsloop API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from opsloop.ui.client import api_url

APP = Path(__file__).parent / "app.py"


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def ui(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8501,
    api: Annotated[str | None, typer.Option(help="The API's URL (default $OPSLOOP_API_URL, else "
                                                 "http://127.0.0.1:8000).")] = None,
) -> None:
    """Serve the web UI (Streamlit) for reviewing incidents and approving actions; it talks only to the
    API (`opsloop serve`), and users sign in with an API token (`opsloop tokens create`)."""
    try:
        import streamlit  # noqa: F401
    except ImportError:
        typer.echo("error: streamlit is not installed (pip install -e .)", err=True)
        raise typer.Exit(2) from None
    if _port_taken(host, port):
        typer.echo(f"error: {host}:{port} is in use; pick another with --port", err=True)
        raise typer.Exit(2)
    target = (api or api_url()).rstrip("/")
    typer.echo(f"opsloop UI on http://{host}:{port} (API {target}); sign in with a token from "
               "`opsloop tokens create --name NAME --role approver`")
    env = {**os.environ, "OPSLOOP_API_URL": target}
    child = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
                              "--server.address", host, "--server.port", str(port),
                              "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
                              "--client.toolbarMode", "viewer"], env=env)

    def forward(signum, _frame):
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    raise typer.Exit(child.wait())
