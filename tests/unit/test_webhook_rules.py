"""Standard Webhooks signing and the retry schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook

from reelgate.domain.webhooks import (
    GIVE_UP_AFTER_S,
    RETRY_DELAYS_S,
    SECRET_PREFIX,
    UNREACHABLE_ATTEMPTS,
    new_webhook_secret,
    next_attempt_ms,
    retry_delay_s,
    signed_headers,
)

BODY = b'{"task_id":"task_01","state":"success"}'


def test_secrets_are_whsec_and_32_random_bytes() -> None:
    secret = new_webhook_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(secret.removeprefix(SECRET_PREFIX))) == 32
    assert new_webhook_secret() != secret


def test_the_signature_is_hmac_sha256_over_id_timestamp_and_body() -> None:
    secret = new_webhook_secret()
    headers = signed_headers((secret,), "msg_1", 1_760_000_000, BODY)
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    expected = hmac.new(key, b"msg_1.1760000000." + BODY, hashlib.sha256).digest()
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1760000000",
        "webhook-signature": "v1," + base64.b64encode(expected).decode(),
    }


def test_a_standard_webhooks_receiver_accepts_a_fresh_signature_and_refuses_a_changed_body() -> (
    None
):
    secret = new_webhook_secret()
    headers = signed_headers((secret,), "msg_2", int(time.time()), BODY)
    receiver = Webhook(secret)
    assert receiver.verify(BODY, headers)["state"] == "success"
    with pytest.raises(Exception, match="signature"):
        receiver.verify(BODY.replace(b"success", b"fail"), headers)


def test_during_a_rotation_receivers_with_either_secret_accept_the_delivery() -> None:
    new, old, other = new_webhook_secret(), new_webhook_secret(), new_webhook_secret()
    headers = signed_headers((new, old), "msg_3", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        assert Webhook(secret).verify(BODY, headers)["state"] == "success"
    with pytest.raises(Exception, match="signature"):
        Webhook(other).verify(BODY, headers)


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(1, 5), (2, 30), (3, 120), (4, 600), (8, 14400), (9, 14400), (50, 14400)],
)
def test_retries_wait_longer_after_each_failure_up_to_four_hours(failures: int, delay: int) -> None:
    assert retry_delay_s(failures) == delay


def test_the_schedule_only_grows() -> None:
    assert list(RETRY_DELAYS_S) == sorted(RETRY_DELAYS_S)


def test_retries_stop_once_a_day_has_passed_with_a_last_attempt_at_the_day_end() -> None:
    first = 1_000_000
    day_ms = GIVE_UP_AFTER_S * 1000
    assert next_attempt_ms(1, first, first) == first + 5000
    # Near the end of the day the next attempt lands exactly at its end, not after it.
    assert next_attempt_ms(8, first, first + day_ms - 1000) == first + day_ms
    assert next_attempt_ms(9, first, first + day_ms) is None


def test_the_scale_shrinks_delays_and_the_day_alike() -> None:
    assert retry_delay_s(2, scale=0.01) == pytest.approx(0.3)
    assert next_attempt_ms(1, 0, int(GIVE_UP_AFTER_S * 10), scale=0.01) is None


def test_a_destination_that_cannot_be_reached_is_given_up_after_three_attempts() -> None:
    start = 1_760_000_000_000
    for failed in range(1, UNREACHABLE_ATTEMPTS):
        assert next_attempt_ms(failed, start, start + failed, unreachable=True) is not None
    assert next_attempt_ms(UNREACHABLE_ATTEMPTS, start, start + 3, unreachable=True) is None
    # A receiver that answers with an error is still tried for the whole day.
    assert next_attempt_ms(UNREACHABLE_ATTEMPTS, start, start + 3) is not None
