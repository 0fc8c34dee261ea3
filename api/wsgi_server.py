"""Run the application under gunicorn from Python (``cat-engine serve``)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):
    def __init__(self, factory: Callable[[], Flask], options: dict) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._factory()


def run_gunicorn(factory: Callable[[], Flask], host: str, port: int, workers: int) -> None:
    """Serve ``factory()`` with ``workers`` gunicorn processes of four threads each."""
    _Server(
        factory,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": 4,
            "worker_class": "gthread",
            "accesslog": "-",
            "timeout": 60,
        },
    ).run()
