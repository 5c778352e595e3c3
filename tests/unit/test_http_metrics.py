"""The request metrics, kept cheaply and handed to prometheus-client's exposition as it is."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reelgate.services.http_metrics import HttpMetrics


def _samples(metrics: HttpMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_requests_are_counted_and_timed_in_cumulative_buckets() -> None:
    metrics = HttpMetrics()
    for seconds in (0.0001, 0.0005, 0.003, 20.0):
        metrics.record("/v1/tasks/{task_id}", "GET", 200, seconds)
    metrics.record("/v1/tasks/{task_id}", "GET", 404, 0.002)
    samples = _samples(metrics)
    route = ("route", "/v1/tasks/{task_id}")
    assert (
        samples[("reelgate_http_requests_total", (("method", "GET"), route, ("status", "200")))]
        == 4
    )
    assert (
        samples[("reelgate_http_requests_total", (("method", "GET"), route, ("status", "404")))]
        == 1
    )
    bucket = "reelgate_http_request_duration_seconds_bucket"
    assert samples[(bucket, (("le", "0.0005"), ("method", "GET"), route))] == 2, "le: at most"
    assert samples[(bucket, (("le", "0.005"), ("method", "GET"), route))] == 4
    assert samples[(bucket, (("le", "10.0"), ("method", "GET"), route))] == 4
    assert samples[(bucket, (("le", "+Inf"), ("method", "GET"), route))] == 5
    total = samples[("reelgate_http_request_duration_seconds_sum", (("method", "GET"), route))]
    assert abs(total - 20.0056) < 1e-9


def test_methods_a_client_made_up_are_counted_together_as_other() -> None:
    metrics = HttpMetrics()
    for method in ("FOO", "BAR", "FOO"):
        metrics.record("unmatched", method, 405, 0.001)
    samples = _samples(metrics)
    key = ("method", "OTHER"), ("route", "unmatched"), ("status", "405")
    assert samples[("reelgate_http_requests_total", key)] == 3
    assert not [k for k in samples if ("method", "FOO") in k[1]]
