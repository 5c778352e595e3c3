"""Log lines: what each is about, the two ways of writing them, and what they never carry.

**What a line is about.** The request, task, account and upstream channel being served are kept
in context variables, set where the work begins (a request, an engine check, a webhook, a
callback), so that every line written meanwhile, at any depth, carries them without being
handed them. asyncio copies the context into each task it starts, so concurrent work never
mixes them up.

**Two ways of writing.** ``json``: one JSON object per line, for machines (time, level, logger,
event, the context, any extra fields, and for errors the exception). ``human``: one readable line,
for terminals. Without a choice (``REELGATE_LOG_FORMAT``), JSON unless the log stream is a
terminal.

**Never carried.** API keys, admin tokens, webhook secrets, bearer credentials, callback tokens
and link signatures in URLs, passwords in database URLs, and every secret the process knows by
value (:func:`never_show`) are replaced before a line is written, whatever wrote it.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextvars import ContextVar, Token
from typing import Any, Final, Literal, TextIO

import orjson

LogFormat = Literal["json", "human"]

request_id: ContextVar[str | None] = ContextVar("reelgate_request_id", default=None)
task_id: ContextVar[str | None] = ContextVar("reelgate_task_id", default=None)
account_id: ContextVar[str | None] = ContextVar("reelgate_account_id", default=None)
channel: ContextVar[str | None] = ContextVar("reelgate_channel", default=None)
_CONTEXT: Final = (
    ("request_id", request_id),
    ("task_id", task_id),
    ("account_id", account_id),
    ("channel", channel),
)


class about:  # lower case: read as a function, ``with logs.about(task=...):``
    """Every line written inside is about this task, account and upstream channel (those
    given; the others stay as they were)."""

    __slots__ = ("_tokens", "_values")

    def __init__(
        self, *, task: str | None = None, account: str | None = None, upstream: str | None = None
    ) -> None:
        self._values = ((task_id, task), (account_id, account), (channel, upstream))
        self._tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = []

    def __enter__(self) -> None:
        self._tokens = [(var, var.set(value)) for var, value in self._values if value is not None]

    def __exit__(self, *exc: object) -> None:
        for var, token in reversed(self._tokens):
            var.reset(token)


HIDDEN: Final = "[redacted]"
_PATTERNS: Final = (
    # Credentials in headers as written out, and bearer tokens anywhere.
    (re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"), f"Bearer {HIDDEN}"),
    (
        re.compile(
            r"(?i)((?:authorization|x-webhook-signature|webhook-signature)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\"',\s}]+"
        ),
        rf"\1{HIDDEN}",
    ),
    # reelgate's own secrets by their prefixes: API keys, admin tokens, webhook secrets.
    (re.compile(r"\b(rg|rga)_[A-Za-z0-9_\-]{16,}"), rf"\1_{HIDDEN}"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]{16,}"), f"whsec_{HIDDEN}"),
    # Callback tokens and link signatures in URLs.
    (
        re.compile(r"(?i)([?&](?:token|signature|sig|key|api_key|access_token)=)[^&\s\"'#]+"),
        rf"\1{HIDDEN}",
    ),
    # Passwords in URLs (a database's).
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), rf"\1{HIDDEN}@"),
)
_known: list[str] = []


def never_show(*secrets: str | None) -> None:
    """Secrets this process knows by value (the upstream's key, the admin token, the secret
    key...): replaced wherever they would appear. Short values are ignored, lest ordinary words
    be hidden."""
    for secret in secrets:
        if secret and len(secret) >= 8 and secret not in _known:
            _known.append(secret)


def redact(text: str) -> str:
    for secret in _known:
        if secret in text:
            text = text.replace(secret, HIDDEN)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# A LogRecord's own attributes; any other was given as ``extra`` and is written out.
_RECORD_FIELDS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and k[0] != "_"}


def _shown(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        for name, var in _CONTEXT:
            value = var.get()
            if value is not None:
                entry[name] = value
        for name, value in _extras(record).items():
            entry.setdefault(name, _shown(value))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return orjson.dumps(entry, default=str).decode()


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        about = [f"{name}={value}" for name, var in _CONTEXT if (value := var.get()) is not None]
        about += [f"{name}={value}" for name, value in _extras(record).items()]
        if about:
            head, newline, rest = line.partition("\n")
            line = f"{head} [{' '.join(about)}]{newline}{rest}"
        return redact(line)


def _utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def configure(chosen: LogFormat | None = None, stream: TextIO | None = None) -> LogFormat:
    """Send every log line, reelgate's and its libraries' (uvicorn's included), to ``stream``
    (standard error) in the chosen format; returns the format used."""
    out = stream or sys.stderr
    if chosen is None:
        chosen = "human" if out.isatty() else "json"
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if chosen == "json" else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    return chosen
