"""Metrics (Prometheus text format at /metrics) and structured JSON logs. See docs/observability.md."""
