"""/api/v1/activities"""

from __future__ import annotations

from fastapi import APIRouter

from casebridge.kit.uow import ApiRoute

router = APIRouter(prefix="/activities", tags=["activities"], route_class=ApiRoute)
