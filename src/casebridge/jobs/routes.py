"""/api/v1/jobs"""

from __future__ import annotations

from fastapi import APIRouter

from casebridge.kit.uow import ApiRoute

router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=ApiRoute)
