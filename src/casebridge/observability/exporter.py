"""``casebridge worker --metrics-port``: this process's metrics over a tiny HTTP server in a thread.

A separate worker process has no API server, yet its job histograms and outcome counters live in its
memory; Prometheus scrapes each worker process at its own port (the standard per-process model). The
database gauges (queue depth, deliveries) are served by the API's /metrics only, so they are not
counted twice.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from casebridge.observability.routes import authorized, render

log = logging.getLogger("casebridge.metrics")


def start_metrics_server(host: str, port: int, token: str | None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "casebridge-metrics"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._reply(404, b"not found: try /metrics\n", "text/plain; charset=utf-8")
            elif not authorized(self.headers.get("authorization"), token):
                self._reply(401, b"unauthorized\n", "text/plain; charset=utf-8")
            else:
                from casebridge.observability.metrics import CONTENT_TYPE

                self._reply(200, render(None).encode(), CONTENT_TYPE)

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="casebridge-metrics"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the default writes unstructured lines to stderr; scrapes need no log line

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="cb-metrics", daemon=True)
    thread.start()
    log.info("serving worker metrics on http://%s:%d/metrics", host, server.server_address[1])
    return server
