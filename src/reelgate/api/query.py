"""Query parameters of the list routes, said once: what the OpenAPI document states and what a
request is held to are both read off :class:`Param`, so a value the document calls valid is
never refused. Parameters are checked by the gateway (not the framework) so that each 400 names
its parameter and says what it accepts; an unknown or repeated parameter is a 400 too, so that
a typo such as ``created_afer`` is not silently ignored."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request

from reelgate.domain.accounts import ACCOUNT_NAME_PATTERN
from reelgate.domain.catalogue import MODELS
from reelgate.domain.channels import SLUG
from reelgate.domain.ids import is_id
from reelgate.domain.listing import DEFAULT_LIMIT, MAX_LIMIT, MAX_UNIX_S
from reelgate.domain.numbers import plain_int
from reelgate.domain.task import LedgerKind, TaskState
from reelgate.domain.usage import ACCOUNT_GROUPS, GroupBy
from reelgate.errors import InvalidRequest

ULID_PATTERN: Final = "[0-9A-HJKMNP-TV-Z]{26}"
MAX_LEDGER_ID: Final = 10**18 - 1
"""Ledger entry ids as the document bounds them: far beyond any ledger, inside a BIGINT."""


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any]
    accepts: str
    """The words that end "<name> must be ..."."""
    read: Callable[[str], Any]
    """The value, or None when the text is not one this parameter takes."""

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "description": self.description,
            "schema": self.schema,
        }


def integer(
    name: str, least: int, most: int, description: str, default: int | None = None
) -> Param:
    def read(text: str) -> int | None:
        value = plain_int(text)
        return value if value is not None and least <= value <= most else None

    schema: dict[str, Any] = {"type": "integer", "minimum": least, "maximum": most}
    if default is not None:
        schema["default"] = default
    return Param(name, description, schema, f"an integer from {least} to {most}", read)


def one_of(name: str, values: Sequence[str], description: str, default: str | None = None) -> Param:
    choices = frozenset(values)
    schema: dict[str, Any] = {"type": "string", "enum": list(values)}
    if default is not None:
        schema["default"] = default
    return Param(
        name,
        description,
        schema,
        "one of " + ", ".join(values),
        lambda text: text if text in choices else None,
    )


def an_id(name: str, prefix: str, description: str) -> Param:
    return Param(
        name,
        description,
        {"type": "string", "pattern": f"^{prefix}_{ULID_PATTERN}$"},
        f"an id such as {prefix}_01JD7Z8K3M4N5P6Q7R8S9T0V1W",
        lambda text: text if is_id(prefix, text) else None,
    )


def _unix_s(name: str, description: str) -> Param:
    return integer(name, 0, MAX_UNIX_S, f"{description} Unix seconds.")


LIMIT: Final = integer(
    "limit",
    1,
    MAX_LIMIT,
    f"Items per page (JSON only: an export carries every matching item). Default {DEFAULT_LIMIT}.",
    DEFAULT_LIMIT,
)
FORMAT: Final = one_of(
    "format",
    ("json", "csv"),
    "csv: the same items as CSV with a header row, streamed (as `Accept: text/csv` asks). "
    "Default: JSON, unless the Accept header prefers text/csv.",
)
CREATED_AFTER: Final = _unix_s(
    "created_after", "Only what was created after this time (exclusive),"
)
CREATED_BEFORE: Final = _unix_s(
    "created_before", "Only what was created before this time (exclusive),"
)
TASK_FILTERS: Final = (
    one_of("state", [state.value for state in TaskState], "Only tasks in this state."),
    one_of("model", list(MODELS), "Only tasks of this model."),
    CREATED_AFTER,
    CREATED_BEFORE,
    an_id(
        "after",
        "task",
        "The last task id of the previous page (its next_after): the page continues after it.",
    ),
    LIMIT,
    FORMAT,
)
_ACCOUNT_NAME: Final = re.compile(ACCOUNT_NAME_PATTERN)
ACCOUNT: Final = Param(
    "account",
    "Only this account (its name); 404 when there is none.",
    {"type": "string", "pattern": ACCOUNT_NAME_PATTERN},
    "an account's name: 1 to 200 letters, digits, '.', '_', '@' or '-', starting with a "
    "letter or digit",
    lambda text: text if _ACCOUNT_NAME.fullmatch(text) else None,
)
CHANNEL: Final = Param(
    "channel",
    "Only tasks sent to this channel (its id, as billing.channel shows it); a channel no task "
    "was sent to selects none.",
    {"type": "string", "pattern": SLUG.pattern},
    "a channel id: 1 to 40 lowercase letters, digits, '_' or '-', starting with a letter or digit",
    lambda text: text if SLUG.fullmatch(text) else None,
)
ADMIN_TASK_FILTERS: Final = (
    *TASK_FILTERS,
    ACCOUNT,
    an_id("key_id", "key", "Only tasks created with this API key."),
    CHANNEL,
)
LEDGER_FILTERS: Final = (
    one_of("kind", [kind.value for kind in LedgerKind], "Only entries of this kind."),
    CREATED_AFTER,
    CREATED_BEFORE,
    integer(
        "after",
        1,
        MAX_LEDGER_ID,
        "The last entry id of the previous page (its next_after): the page continues after it.",
    ),
    LIMIT,
    FORMAT,
)


def usage_params(groups: Sequence[GroupBy], admin: bool) -> tuple[Param, ...]:
    params = (
        _unix_s("from", "The period's start (inclusive), default the beginning:"),
        _unix_s("to", "The period's end (exclusive), default now:"),
        one_of(
            "group_by",
            [group.value for group in groups],
            "One row per UTC day (YYYY-MM-DD), model, API key"
            + (", or account (its name)." if admin else "."),
            GroupBy.DAY.value,
        ),
        FORMAT,
    )
    return (*params, ACCOUNT) if admin else params


USAGE_PARAMS: Final = usage_params(ACCOUNT_GROUPS, admin=False)
ADMIN_USAGE_PARAMS: Final = usage_params(tuple(GroupBy), admin=True)


def documented(params: Iterable[Param]) -> dict[str, Any]:
    """The parameters as the operation's ``openapi_extra``."""
    return {"parameters": [param.document() for param in params]}


def read(request: Request, params: Iterable[Param]) -> dict[str, Any]:
    """The request's query, each value read by its parameter; InvalidRequest for an unknown or
    repeated parameter or a value not accepted."""
    known = {param.name: param for param in params}
    values: dict[str, Any] = {}
    for name, text in request.query_params.multi_items():
        param = known.get(name)
        if param is None:
            raise InvalidRequest(
                name[:100],
                f"unknown query parameter {name[:100]!r}; this route takes "
                + ", ".join(sorted(known)),
            )
        if name in values:
            raise InvalidRequest(name, f"{name} is given more than once; give it once")
        value = param.read(text)
        if value is None:
            raise InvalidRequest(name, f"{name} must be {param.accepts}")
        values[name] = value
    return values


def _media_ranges(accept: str) -> dict[str, float]:
    """Each media range of an Accept header and its weight."""
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media, *attributes = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for attribute in attributes:
            key, _, value = attribute.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights.setdefault(media.lower(), weight)
    return weights


def wants_csv(request: Request, values: dict[str, Any]) -> bool:
    """CSV when ``format=csv``, or without ``format`` when the Accept header names text/csv
    and prefers nothing it names explicitly over it (JSON otherwise)."""
    if "format" in values:
        return bool(values["format"] == "csv")
    weights = _media_ranges(request.headers.get("accept", ""))
    csv = weights.get("text/csv", 0.0)
    return csv > 0 and csv >= weights.get("application/json", 0.0)
