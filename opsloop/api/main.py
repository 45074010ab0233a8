"""ASGI entry point for ``uvicorn opsloop.api.main:app`` (settings from the environment)."""

from opsloop.api.app import create_app

app = create_app()
