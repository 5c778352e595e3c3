"""The web console at /console: pages for developers (playground, tasks, usage, keys) and for
the operator (dashboard, accounts, tasks, channels), served by the gateway itself with every
script, style and chart library from its own copies (``static/``; see ``static/vendor``)."""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from reelgate.api.console import pages
from reelgate.api.console.sessions import PATH

STATIC_URL: Final = f"{PATH}/static"


def install(app: FastAPI) -> None:
    """Serve the console and its files on ``app``."""
    app.include_router(pages.router)
    app.mount(
        STATIC_URL,
        StaticFiles(directory=str(files("reelgate.api.console") / "static")),
        name="console-static",
    )
