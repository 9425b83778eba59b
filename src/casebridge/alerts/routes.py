"""/api/v1/alerts"""

from __future__ import annotations

from fastapi import APIRouter

from casebridge.kit.uow import ApiRoute

router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=ApiRoute)
