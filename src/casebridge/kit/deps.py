"""FastAPI dependency aliases used by every route module."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from casebridge.config import Settings
from casebridge.kit.context import AppContext, Principal, Role, app_context
from casebridge.kit.problems import Problem
from casebridge.kit.uow import current_principal, request_session


class Require:
    """Admit only principals with one of ``roles``; the route table's auth matrix reads this."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)

    def __call__(self, request: Request) -> Principal:
        principal = current_principal(request)
        if principal.role not in self.roles:
            allowed = ", ".join(sorted(r.value for r in self.roles))
            raise Problem(
                403,
                f"This operation needs one of the roles: {allowed}; the token '{principal.name}' "
                f"has the role {principal.role.value}.",
            )
        return principal


def _settings(request: Request) -> Settings:
    return app_context(request).settings


SessionDep = Annotated[Session, Depends(request_session)]
ContextDep = Annotated[AppContext, Depends(app_context)]
SettingsDep = Annotated[Settings, Depends(_settings)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
