"""Clio's resources under ``/api/v4``. Each module has a ``router``; a module may also have
``outside_router`` (mounted at the server root, e.g. the document upload target standing in for S3) and
``install(state)`` (listeners, e.g. folders made automatically for new matters and contacts)."""

from __future__ import annotations

from types import ModuleType

from fastapi import APIRouter

from casebridge.sandbox.clio.resources import (
    activities,
    bills,
    contacts,
    documents,
    expense_categories,
    folders,
    matters,
    practice_areas,
    users,
    webhooks,
)
from casebridge.sandbox.clio.state import SandboxState

MODULES: tuple[ModuleType, ...] = (
    users,
    contacts,
    matters,
    practice_areas,
    activities,
    expense_categories,
    bills,
    folders,
    documents,
    webhooks,
)


def router() -> APIRouter:
    r = APIRouter()
    for module in MODULES:
        r.include_router(module.router)
    return r


def outside_router() -> APIRouter:
    r = APIRouter()
    for module in MODULES:
        extra = getattr(module, "outside_router", None)
        if extra is not None:
            r.include_router(extra)
    return r


def install(state: SandboxState) -> None:
    for module in MODULES:
        hook = getattr(module, "install", None)
        if hook is not None:
            hook(state)
