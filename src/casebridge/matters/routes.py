"""/api/v1/matters"""

from __future__ import annotations

from fastapi import APIRouter

from casebridge.kit.uow import ApiRoute

router = APIRouter(prefix="/matters", tags=["matters"], route_class=ApiRoute)
