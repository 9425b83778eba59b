"""/api/v1/linked-services"""

from __future__ import annotations

from fastapi import APIRouter

from casebridge.kit.uow import ApiRoute

router = APIRouter(prefix="/linked-services", tags=["linked-services"], route_class=ApiRoute)
