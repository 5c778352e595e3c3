"""Every reelgate error has its own HTTP answer, and anything else still gets the contract's
error body (503 internal_error), never a bare 500."""

from __future__ import annotations

import importlib
import pkgutil

import httpx
import pytest
from fastapi import FastAPI

import reelgate
from reelgate import errors
from reelgate.api.errors import ANSWERS, INTERNAL, answer_for, install


def _all_subclasses(cls: type[errors.ReelgateError]) -> set[type[errors.ReelgateError]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def _every_error_class() -> set[type[errors.ReelgateError]]:
    # Import every module first, so that a subclass defined anywhere in reelgate is seen.
    for module in pkgutil.walk_packages(reelgate.__path__, "reelgate."):
        importlib.import_module(module.name)
    return {
        cls
        for cls in _all_subclasses(errors.ReelgateError)
        if cls.__module__.startswith("reelgate")
    }


def test_every_error_class_in_reelgate_is_in_the_answer_table() -> None:
    classes = _every_error_class()
    assert classes, "the walk found no error classes"
    missing = sorted(cls.__qualname__ for cls in classes if cls not in ANSWERS)
    assert missing == []


def test_every_error_class_lives_in_the_errors_module() -> None:
    outside = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _every_error_class()
        if cls.__module__ != "reelgate.errors"
    )
    assert outside == []


class _Unmapped(errors.ReelgateError):
    """Defined here, after the table: it has no row of its own."""


def test_an_error_without_a_row_is_answered_as_an_internal_error() -> None:
    assert answer_for(_Unmapped("x")) is INTERNAL
    assert (INTERNAL.status, INTERNAL.error) == (503, "internal_error")


@pytest.mark.parametrize(
    "raised",
    [_Unmapped("secret detail"), RuntimeError("secret detail"), errors.MediaUnavailable("secret")],
    ids=["unmapped-reelgate-error", "plain-exception", "internal-error"],
)
async def test_an_unexpected_error_gets_the_contract_body_with_no_detail(
    raised: Exception,
) -> None:
    app = FastAPI()
    install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise raised

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.get("/boom")
    assert answer.status_code == 503
    body = answer.json()
    assert set(body) == {"error", "message", "type", "code", "param"}
    assert (body["error"], body["code"]) == ("internal_error", "internal_error")
    assert "secret" not in answer.text
