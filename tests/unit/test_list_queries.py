"""The rules of list queries, as tables: which parameters and values are taken, when CSV is
wanted, the id range of a creation window, and UTC days."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from starlette.requests import Request
from ulid import ULID

from reelgate.api import query
from reelgate.domain.listing import TaskFilter
from reelgate.domain.usage import day_label, day_start
from reelgate.errors import InvalidRequest


def request(query_string: str = "", accept: str | None = None) -> Request:
    headers = [] if accept is None else [(b"accept", accept.encode())]
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "query_string": query_string.encode(),
            "headers": headers,
        }
    )


ALL_PARAMS = {
    param.name + ("" if routes == "tasks" else f"@{routes}"): param
    for routes, params in (
        ("tasks", query.ADMIN_TASK_FILTERS),
        ("ledger", query.LEDGER_FILTERS),
        ("usage", query.ADMIN_USAGE_PARAMS),
    )
    for param in params
}

VALUES: list[tuple[str, str, bool]] = [
    ("limit", "1", True),
    ("limit", "100", True),
    ("limit", "0", False),
    ("limit", "101", False),
    ("limit", "+5", False),
    ("limit", " 5", False),
    ("limit", "5.0", False),
    ("limit", "\u0665", False),  # an Arabic-Indic five: a digit to str.isdigit, not here
    ("created_after", "0", True),
    ("created_after", "253402300799", True),
    ("created_after", "253402300800", False),
    ("created_after", "-1", False),
    ("after", "task_01JD7Z8K3M4N5P6Q7R8S9T0V1W", True),
    ("after", "task_01JD7Z8K3M4N5P6Q7R8S9T0V1w", False),
    ("after@ledger", "1", True),
    ("after@ledger", "999999999999999999", True),
    ("after@ledger", "0", False),
    ("after@ledger", "1000000000000000000", False),
    ("state", "success", True),
    ("state", "SUCCESS", False),
    ("model", "seedance-2", True),
    ("model", "seedance-3", False),
    ("kind@ledger", "credit", True),
    ("kind@ledger", "refund", False),
    ("group_by@usage", "account", True),
    ("group_by@usage", "week", False),
    ("account", "studio.eu-1@x", True),
    ("account", "-studio", False),
    ("account", "a b", False),
    ("account", "x" * 201, False),
    ("key_id", "key_01JD7Z8K3M4N5P6Q7R8S9T0V1W", True),
    ("key_id", "task_01JD7Z8K3M4N5P6Q7R8S9T0V1W", False),
    ("format", "csv", True),
    ("format", "CSV", False),
]


def _as_documented(schema: dict[str, Any], text: str) -> object:
    """The value a query text stands for by the document: an integer is written as Python
    writes it (no sign, space or leading zero); anything else is not one."""
    if schema["type"] != "integer":
        return text
    try:
        number = int(text)
    except ValueError:
        return text
    return number if str(number) == text else text


@pytest.mark.parametrize(("name", "text", "taken"), VALUES)
def test_a_parameter_takes_what_its_documented_schema_allows(
    name: str, text: str, taken: bool
) -> None:
    param = ALL_PARAMS[name]
    assert (param.read(text) is not None) is taken
    assert Draft202012Validator(param.schema).is_valid(_as_documented(param.schema, text)) is taken


def test_an_id_with_a_line_break_after_it_is_not_taken() -> None:
    """Python's ``$`` matches before a final line break; ECMA-262's, which OpenAPI means, and
    the gateway's check do not."""
    assert ALL_PARAMS["after"].read("task_01JD7Z8K3M4N5P6Q7R8S9T0V1W\n") is None


def test_a_query_is_read_by_its_parameters() -> None:
    values = query.read(
        request("state=fail&limit=5&created_after=10&format=csv"), query.TASK_FILTERS
    )
    assert values == {"state": "fail", "limit": 5, "created_after": 10, "format": "csv"}


@pytest.mark.parametrize(
    ("query_string", "param", "says"),
    [
        ("limit=0", "limit", "limit must be an integer from 1 to 100"),
        ("stat=fail", "stat", "unknown query parameter 'stat'; this route takes after, "),
        ("state=fail&state=success", "state", "state is given more than once"),
        ("account=x", "account", "unknown query parameter"),
    ],
)
def test_a_query_is_refused_naming_the_parameter(query_string: str, param: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        query.read(request(query_string), query.TASK_FILTERS)
    assert refused.value.param == param
    assert says in refused.value.message


@pytest.mark.parametrize(
    ("query_string", "accept", "csv"),
    [
        ("", None, False),
        ("", "*/*", False),
        ("", "application/json", False),
        ("", "text/csv", True),
        ("", "text/csv; charset=utf-8", True),
        ("", "TEXT/CSV", True),
        ("", "text/csv, application/json", True),
        ("", "application/json, text/csv;q=0.5", False),
        ("", "application/json;q=0.5, text/csv", True),
        ("", "text/csv;q=0", False),
        ("", "text/csv;q=nonsense", False),
        ("", "text/*", False),
        ("format=csv", "application/json", True),
        ("format=json", "text/csv", False),
    ],
)
def test_csv_is_answered_when_format_or_accept_asks(
    query_string: str, accept: str | None, csv: bool
) -> None:
    values = query.read(request(query_string), query.TASK_FILTERS)
    assert query.wants_csv(request(query_string, accept), values) is csv


@pytest.mark.parametrize("created_s", [1_700_000_000, 1_700_000_001])
@pytest.mark.parametrize("ms_into_second", [0, 1, 999])
def test_a_creation_window_keeps_every_task_made_in_it(created_s: int, ms_into_second: int) -> None:
    """The id range is wider than the window: a task made at second s (its id a moment later)
    is inside the range of every window that holds s."""
    task_id = f"task_{ULID.from_timestamp((created_s * 1000 + ms_into_second) / 1000)}"
    for after, before in [
        (created_s - 1, created_s + 1),
        (created_s - 1, None),
        (None, created_s + 1),
    ]:
        low, high = TaskFilter(created_after=after, created_before=before).id_range()
        assert low is None or task_id >= low
        assert high is None or task_id < high
    assert TaskFilter().id_range() == (None, None)


def test_a_creation_window_is_bounded_within_a_minute_or_so() -> None:
    low, high = TaskFilter(created_after=1_700_000_000, created_before=1_700_000_100).id_range()
    # A ULID's first ten characters are its millisecond.
    assert low == f"task_{ULID.from_timestamp(1_700_000_001.0 - 60)}"[:15] + "0" * 16
    assert high == f"task_{ULID.from_timestamp(1_700_000_100.0 + 60)}"[:15] + "0" * 16


@pytest.mark.parametrize(
    ("day", "label"),
    [(0, "1970-01-01"), (19_700, "2023-12-09"), (2_932_896, "9999-12-31")],
)
def test_days_are_utc_dates(day: int, label: str) -> None:
    assert day_label(day) == label
    assert day_start(label) == day * 86_400


@pytest.mark.parametrize("text", ["2026-1-05", "20261205", "2026-W49-1", "2026-12-05T00:00", ""])
def test_a_day_is_written_yyyy_mm_dd(text: str) -> None:
    with pytest.raises(ValueError, match=r"YYYY-MM-DD|Invalid"):
        day_start(text)
