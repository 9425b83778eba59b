"""/api/v1/webhooks"""

from __future__ import annotations

from fastapi import APIRouter

from casebridge.kit.uow import ApiRoute

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=ApiRoute)
