"""One request to the console: who makes it (from the session cookie), and how pages, forms and
refusals are answered. Pages are rendered on the server from Jinja2 templates, escaped by
default; scripts live in static files only, so the page's Content-Security-Policy can forbid
every inline script."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, Final
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from reelgate.api.console.sessions import COOKIE, PATH, Session, Sessions, Who
from reelgate.api.errors import ANSWERS, INTERNAL
from reelgate.api.public import read_bytes
from reelgate.api.state import ApiState, api_state
from reelgate.domain.accounts import Account, ApiKey
from reelgate.domain.money import micro_to_usd
from reelgate.errors import ReelgateError, Unauthorized

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""Scripts, styles, media and requests from the gateway only, and no inline script at all."""
MAX_FORM_BYTES: Final = 64 * 1024

_TEMPLATES: Final = Environment(
    loader=FileSystemLoader(str(files("reelgate.api.console") / "templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATES.filters["usd"] = micro_to_usd


def _when(unix_s: int | None) -> str:
    if unix_s is None:
        return ""
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when_ms(unix_ms: int | None) -> str:
    if unix_ms is None:
        return ""
    moment = datetime.fromtimestamp(unix_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{unix_ms % 1000:03d} UTC"


def _took(ms: int | None) -> str:
    """A duration as a person reads it: milliseconds, seconds, or minutes and seconds."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


_TEMPLATES.filters["when"] = _when
_TEMPLATES.filters["when_ms"] = _when_ms
_TEMPLATES.filters["took"] = _took


class Answer(Exception):
    """A response that ends the request at once: a redirect to sign in, a refusal."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def secure_headers(response: Response) -> Response:
    response.headers["content-security-policy"] = CSP
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "no-referrer"
    response.headers["x-frame-options"] = "DENY"
    # Pages show an account's data: never kept by a shared cache, nor by the browser's.
    response.headers["cache-control"] = "no-store"
    return response


@dataclass
class Visit:
    request: Request
    api: ApiState
    sessions: Sessions
    session: Session
    key: ApiKey | None = None
    """The signed-in developer's key."""
    renew: bool = False
    """The cookie must be set (or replaced) on the response."""
    flash: list[str] = field(default_factory=list)
    form_pairs: list[tuple[str, str]] = field(default_factory=list)
    """The posted form's fields in order, repeated names included (a form's checkboxes)."""

    @property
    def who(self) -> Who:
        return self.session.who

    @property
    def csrf(self) -> str:
        return self.sessions.csrf_token(self.session)

    def sign_in_as(self, who: Who, secret_hash: str, key: ApiKey | None = None) -> None:
        # A new session id: a session planted before signing in is worth nothing after it.
        self.session = Session.new(who, secret_hash)
        self.key = key
        self.renew = True

    def sign_out(self) -> None:
        self.session = Session.new()
        self.key = None
        self.renew = True

    def finish(self, response: Response) -> Response:
        if self.renew:
            https = self.request.url.scheme == "https" or (
                self.api.services.settings.public_url or ""
            ).startswith("https:")
            response.set_cookie(
                COOKIE,
                self.sessions.seal(self.session),
                max_age=max(0, self.session.expires_at - _now()),
                path=PATH,
                httponly=True,
                samesite="strict",
                secure=https,
            )
        return secure_headers(response)

    def page(self, template: str, status: int = 200, **context: Any) -> Response:
        html = _TEMPLATES.get_template(template).render(
            who=self.who.value,
            csrf=self.csrf,
            path=self.request.url.path,
            flash=self.flash,
            **context,
        )
        return self.finish(HTMLResponse(html, status))

    def redirect(self, to: str) -> Response:
        return self.finish(RedirectResponse(to, 303))

    def refuse(self, status: int, message: str) -> Answer:
        return Answer(self.page("error.html", status, code=status, message=message))

    def developer(self) -> ApiKey:
        """The signed-in developer's key; else sign in, or 403 for the operator."""
        if self.who is Who.ANONYMOUS:
            raise Answer(self.redirect(f"{PATH}/sign-in"))
        if self.key is None:
            raise self.refuse(403, "This page is for developers: sign in with an API key.")
        return self.key

    def operator(self) -> None:
        if self.who is Who.ANONYMOUS:
            raise Answer(self.redirect(f"{PATH}/sign-in"))
        if self.who is not Who.OPERATOR:
            raise self.refuse(403, "This page is for the operator: sign in with the admin token.")

    async def account(self) -> Account:
        return await self.api.services.usage.account(self.developer().account_id)

    async def form(self) -> dict[str, str]:
        """A posted form's fields, once its CSRF token is found good; else a 403."""
        # Read as the API reads bodies: refused past the limit, before all of it arrives.
        body = await read_bytes(self.request, MAX_FORM_BYTES)
        self.form_pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        fields = dict(self.form_pairs)
        if not self.sessions.csrf_ok(self.session, fields.get("csrf")):
            raise self.refuse(
                403,
                "This form did not come from this console session (its CSRF token is missing "
                "or stale): reload the page and try again.",
            )
        return fields

    def check_header_csrf(self) -> None:
        """For the playground's script requests: the token travels in a header."""
        if not self.sessions.csrf_ok(self.session, self.request.headers.get("x-csrf-token")):
            raise self.refuse(403, "missing or stale CSRF token: reload the page")


def _now() -> int:
    return int(time.time())


async def visit(request: Request) -> Visit:
    """Who is asking, from the session cookie. A cookie that does not open, has expired, was
    signed out, or names a key since revoked (or an admin token since replaced) counts as no
    session."""
    api = api_state(request)
    sessions = Sessions(request.app.state.console_key)
    session = sessions.open(request.cookies.get(COOKIE))
    current = Visit(request, api, sessions, session or Session.new(), renew=session is None)
    request.state.console_visit = current
    if session is None:
        return current
    if session.who is not Who.ANONYMOUS and await api.services.console_sessions.ended(session.sid):
        # Signed out: a copy of the cookie kept elsewhere opens nothing.
        current.sign_out()
        return current
    if session.who is Who.DEVELOPER:
        try:
            current.key = await api.auth.key_by_hash(session.secret_hash)
        except Unauthorized:
            current.sign_out()
    elif session.who is Who.OPERATOR:
        admin = api.auth.admin_token_hash
        if admin is None or not hmac.compare_digest(admin, session.secret_hash):
            current.sign_out()
    return current


class ConsoleRoute(APIRoute):
    """Console routes answer errors as pages, not as the API's JSON: a refused or missing
    thing is shown to a person. The script endpoints (under /console/api) keep the API's
    JSON errors, which the scripts read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        scripted = self.path.startswith(f"{PATH}/api/")

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Answer as early:
                return early.response
            except ReelgateError as exc:
                current: Visit | None = getattr(request.state, "console_visit", None)
                if scripted or current is None:
                    raise
                known = ANSWERS.get(type(exc), INTERNAL)
                message = exc.message if known.shown else "Something went wrong on our side."
                return current.page("error.html", known.status, code=known.status, message=message)

        return answer
