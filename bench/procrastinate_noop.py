"""procrastinate's side of bench/jobs.py: the same no-op task, on the same PostgreSQL server.

Run by `procrastinate --app=procrastinate_noop.app worker` with PYTHONPATH=bench/ and the database in
BENCH_PROCRASTINATE_CONNINFO. The task is ``async def``: procrastinate's native kind (a sync task would
run in a thread), i.e. its best case.
"""

from __future__ import annotations

import os

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ.get("BENCH_PROCRASTINATE_CONNINFO", "")))


@app.task(name="bench.noop")
async def noop() -> None:
    return None
