"""Operations: Prometheus metrics (metrics.py), liveness/readiness and lag (health.py), the
HTTP server for both (http.py), and the JSON/text log format (log_format.py)."""
__all__: list[str] = []
