# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics on a per-app ``CollectorRegistry`` (tests create many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    """The server's metrics; services get the counters they increment injected."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "attestor_http_requests_total",
            "HTTP requests by endpoint, method and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "attestor_http_request_duration_seconds",
            "HTTP request latency by endpoint, method and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.attestations_issued = Counter(
            "attestor_attestations_issued_total",
            "Layer attestations signed and stored.",
            registry=self.registry,
        )
        self.verifications = Counter(
            "attestor_verifications_total",
            "Verifications performed, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.job_queue_depth = Gauge(
            "attestor_job_queue_depth",
            "Jobs queued or running.",
            registry=self.registry,
        )
