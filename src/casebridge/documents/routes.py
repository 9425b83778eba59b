"""/api/v1/documents"""

from __future__ import annotations

from fastapi import APIRouter

from casebridge.kit.uow import ApiRoute

router = APIRouter(prefix="/documents", tags=["documents"], route_class=ApiRoute)
