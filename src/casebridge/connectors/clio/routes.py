"""Clio's two ways in, outside /api/v1 and without a bearer token: the OAuth callback (a person's browser,
checked by the single-use ``state``) and the webhook receiver (Clio, checked by the signature)."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from casebridge.connectors.clio import service, webhooks
from casebridge.kit.context import app_context
from casebridge.kit.problems import Problem, problem_response
from casebridge.sync.runtime import sync_env

router = APIRouter(tags=["clio"], include_in_schema=False)

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;line-height:1.5}}</style>
</head><body><h1>{title}</h1><p>{message}</p></body></html>"""


def _page(title: str, message: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), message=html.escape(message)), status_code=status
    )


@router.get("/oauth/clio/callback")
async def clio_callback(request: Request) -> Response:
    """Where Clio sends the person who approved (or declined) the connection."""
    ctx = app_context(request)
    params = request.query_params
    if params.get("error"):
        reason = params.get("error_description") or params["error"]
        return _page("Not connected", f"Clio did not authorize the connection: {reason}.", 400)
    code, state = params.get("code"), params.get("state")
    if not code or not state:
        return _page("Not connected", "The callback needs the code and state Clio sends.", 400)
    env = sync_env(ctx.db, ctx.settings)
    try:
        connection_id = await run_in_threadpool(service.complete, env, state=state, code=code)
    except Problem as problem:
        if "application/json" in request.headers.get("accept", ""):
            return problem_response(problem, request)
        return _page("Not connected", problem.detail or "The connection failed.", problem.status)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"connection_id": str(connection_id), "state": "connected"})
    return _page("Connected to Clio", "Casebridge is now connected to Clio Manage; you can close this page.")


@router.post(webhooks.PATH + "/{token}")
async def clio_webhook(request: Request, token: str) -> Response:
    """Clio's webhook deliveries (and the X-Hook-Secret handshake)."""
    ctx = app_context(request)
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    env = sync_env(ctx.db, ctx.settings)
    answer = await run_in_threadpool(webhooks.receive, env, token, headers, body)
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
