"""The API's own pages, `/docs` (Swagger UI) and `/redoc`, with every script, style and image
served by the gateway itself: they work on a machine with no internet and load nothing from a
CDN. The assets are the pinned copies the ``fastapi-offline`` package ships (Swagger UI, ReDoc);
the pages are FastAPI's own, pointed at them."""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL: Final = "/docs/assets"
_ASSETS_DIR: Final = str(files("fastapi_offline") / "static")

# Scripts and styles from this gateway only; Swagger UI and ReDoc need inline styles, ReDoc a
# worker made from a blob, and both inline their bootstrap script.
_CSP: Final = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


def _page(html: HTMLResponse) -> HTMLResponse:
    html.headers["content-security-policy"] = _CSP
    html.headers["x-content-type-options"] = "nosniff"
    html.headers["referrer-policy"] = "no-referrer"
    return html


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return _page(
        get_swagger_ui_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title="reelgate: API reference",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        )
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return _page(
        get_redoc_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title="reelgate: API reference",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
    )


def install(app: FastAPI) -> None:
    """Serve both pages and their assets on ``app``."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=_ASSETS_DIR), name="docs-assets")
