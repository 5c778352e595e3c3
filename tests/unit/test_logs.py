"""Log lines: JSON objects carrying what they are about, a readable line for terminals, and
never a secret, whatever wrote them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from reelgate import logs


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    """Everything logged in the test, as JSON lines; logging as it was afterwards."""
    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    out = io.StringIO()
    assert logs.configure("json", out) == "json"
    yield out
    root.handlers[:], root.level = kept


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_what_it_is_about(written: io.StringIO) -> None:
    token = logs.request_id.set("req-1")
    try:
        with logs.about(task="task_1", account="acct_1", upstream="kie"):
            logging.getLogger("reelgate.test").warning("task %s refused", "task_1", extra={"n": 2})
        logging.getLogger("reelgate.test").info("after")
    finally:
        logs.request_id.reset(token)
    first, after = lines(written)
    assert first["level"] == "warning"
    assert first["logger"] == "reelgate.test"
    assert first["event"] == "task task_1 refused"
    assert str(first["time"]).endswith("Z")
    assert (first["request_id"], first["task_id"], first["account_id"], first["channel"]) == (
        "req-1",
        "task_1",
        "acct_1",
        "kie",
    )
    assert first["n"] == 2
    assert after["request_id"] == "req-1"
    assert "task_id" not in after, "the task's context ends with its block"


def test_an_error_carries_its_exception(written: io.StringIO) -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("reelgate.test").exception("it failed")
    [line] = lines(written)
    assert line["exc_type"] == "ValueError"
    assert "ValueError: broken" in str(line["exception"])


SECRET_TEXTS = [
    "Authorization: Bearer rg_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "key rg_AbCdEfGhIjKlMnOpQrStUvWxYz012345 used",
    "admin rga_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "secret whsec_QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
    "POST /v1/upstream/callbacks/kie?task_id=task_1&token=c2VjcmV0LXRva2VuLXZhbHVl",
    "GET /v1/tasks/task_1/content/0?expires=1&signature=deadbeefdeadbeef",
    "{'x-webhook-signature': 'c2lnbmF0dXJlLXZhbHVlLWhlcmU='}",
    "cannot connect to postgresql://reelgate:hunter2-password@db:5432/reelgate",
    "the configured key is kie-key-0123456789",
]


@pytest.mark.parametrize("text", SECRET_TEXTS)
def test_secrets_never_appear_in_a_line(written: io.StringIO, text: str) -> None:
    logs.never_show("kie-key-0123456789")
    logging.getLogger("reelgate.test").warning("%s", text, extra={"url": text})
    logging.getLogger("reelgate.test").warning(text)
    out = written.getvalue()
    for secret in (
        "rg_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        "rga_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        "QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        "c2VjcmV0LXRva2VuLXZhbHVl",
        "deadbeefdeadbeef",
        "c2lnbmF0dXJlLXZhbHVlLWhlcmU=",
        "hunter2-password",
        "kie-key-0123456789",
    ):
        assert secret not in out
    assert logs.HIDDEN in out


def test_the_human_format_is_one_readable_line_with_its_context() -> None:
    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    out = io.StringIO()
    try:
        assert logs.configure("human", out) == "human"
        with logs.about(task="task_1"):
            logging.getLogger("reelgate.test").warning("Bearer rg_AbCdEfGhIjKlMnOpQrStUvWxYz01")
    finally:
        root.handlers[:], root.level = kept
    assert out.getvalue() == f"WARNING reelgate.test: Bearer {logs.HIDDEN} [task_id=task_1]\n"


def test_json_is_chosen_when_the_log_stream_is_not_a_terminal() -> None:
    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    try:
        assert logs.configure(None, io.StringIO()) == "json"
    finally:
        root.handlers[:], root.level = kept
