"""Prometheus metrics of one server (own registry, so several apps in one process stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    """Requests by endpoint and status, latency, items per request, jobs and rows per backend step,
    refusals before scoring and failures while scoring (``non_finite``, ``model``, ``backend``) by reason."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rmforge_requests", "HTTP requests", ["endpoint", "status"], registry=r)
        self.latency = Histogram("rmforge_request_seconds", "Request latency", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.items = Histogram("rmforge_request_items", "Responses per scoring request", buckets=SIZE_BUCKETS,
                               registry=r)
        self.step_jobs = Histogram("rmforge_batch_requests", "Requests merged per backend step",
                                   buckets=SIZE_BUCKETS, registry=r)
        self.step_rows = Histogram("rmforge_batch_rows", "Responses per backend step", buckets=SIZE_BUCKETS,
                                   registry=r)
        self.queue_rows = Gauge("rmforge_queue_rows", "Responses waiting in the queue", registry=r)
        self.rejected = Counter("rmforge_rejected", "Requests refused before scoring", ["reason"], registry=r)
        self.errors = Counter("rmforge_errors", "Requests that failed while scoring (500)", ["reason"], registry=r)

    def on_step(self, jobs: int, rows: int) -> None:
        self.step_jobs.observe(jobs)
        self.step_rows.observe(rows)

    def render(self) -> bytes:
        return generate_latest(self.registry)
