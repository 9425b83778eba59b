"""/api/v1/workflows"""

from __future__ import annotations

from fastapi import APIRouter

from casebridge.kit.uow import ApiRoute

router = APIRouter(prefix="/workflows", tags=["workflows"], route_class=ApiRoute)
