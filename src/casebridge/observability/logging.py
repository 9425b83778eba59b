"""Structured logs: one JSON object per line, carrying the request id and the job id.

Every record passes through :class:`ContextFilter`, which copies the ids of what this thread or task is
doing right now from context variables:

* ``request_id``: set by ``RequestIdMiddleware`` for the whole request (the endpoint's thread-pool
  call inherits it, because Starlette copies the context into the worker thread);
* ``job_id`` / ``job_kind``: set by the job worker around each job it runs.

:class:`JsonFormatter` writes ``ts``, ``level``, ``logger``, ``message``, those ids when present, any
``extra={...}`` fields a caller passed, and ``exc_info`` (the formatted traceback) when there is one.
Secrets never belong in a log line; as a last line of defence, bearer tokens, API tokens (``cb_…``),
``Authorization`` headers and passwords in URLs are masked in the message and the traceback.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["json", "text"]

request_id_var: ContextVar[str | None] = ContextVar("casebridge_request_id", default=None)
job_id_var: ContextVar[int | None] = ContextVar("casebridge_job_id", default=None)
job_kind_var: ContextVar[str | None] = ContextVar("casebridge_job_kind", default=None)

# The attributes every LogRecord has; anything else on a record came from ``extra={...}``.
_STANDARD = frozenset(
    set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)))
    | {"message", "asctime", "request_id", "job_id", "job_kind", "color_message", "taskName", "ids"}
)

_SECRETS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\",\s}]+(\s+[^'\",\s}]+)?"), r"\1[redacted]"),
    (re.compile(r"\bcb_[A-Za-z0-9_-]{8,}"), "cb_[redacted]"),
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+@"), r"\1[redacted]@"),
    (re.compile(r"(?i)\b(password|secret|token)=([^&\s]+)"), r"\1=[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Copy the current request and job ids onto every record (None when outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.job_id = job_id_var.get()
        record.job_kind = job_kind_var.get()
        return True


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in ("request_id", "job_id", "job_kind"):
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = _jsonable(value)
        if record.exc_info:
            out["exc_info"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc_info"] = redact(record.exc_text)
        if record.stack_info:
            out["stack_info"] = redact(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the same ids: ``ts LEVEL logger [req=… job=…] message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(ids)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = []
        request_id = getattr(record, "request_id", None)
        job_id = getattr(record, "job_id", None)
        if request_id:
            ids.append(f"req={request_id}")
        if job_id is not None:
            ids.append(f"job={job_id}:{getattr(record, 'job_kind', '')}")
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return redact(super().format(record))


def log_config(fmt: LogFormat = "json", level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``casebridge serve`` (passed to uvicorn) and ``worker``.

    Every logger, ours, uvicorn's and libraries', goes through one stderr handler. Uvicorn's own access
    log is turned off by the caller: the access middleware logs each request instead, with its id and
    route template (``casebridge.access``)."""
    formatter = (
        {"()": "casebridge.observability.logging.JsonFormatter"}
        if fmt == "json"
        else {"()": "casebridge.observability.logging.TextFormatter"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "casebridge.observability.logging.ContextFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["context"],
            }
        },
        "loggers": {
            # uvicorn's loggers carry handlers of their own unless told otherwise: send them to root.
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            "casebridge": {"handlers": [], "level": level.upper(), "propagate": True},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


def configure(fmt: LogFormat = "json", level: str = "info") -> None:
    logging.config.dictConfig(log_config(fmt, level))
