"""Request dependencies: the store session and the authenticated caller with a role check.

Bearer tokens map to roles ``viewer < operator < approver < admin``; a missing or unknown token gets
401, a token whose role is too low gets 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from opsloop.config import Settings
from opsloop.domain import ROLES
from opsloop.store import repository as repo
from opsloop.store.session import Store

RANK = {role: i for i, role in enumerate(ROLES)}
_bearer = HTTPBearer(auto_error=False, description="An opsloop API token (`opsloop tokens create`).")


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(store: Annotated[Store, Depends(get_store)]) -> Iterator[Session]:
    with store() as session:
        yield session


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's name and role."""

    name: str
    role: str


def _caller(store: StoreDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", {"WWW-Authenticate": "Bearer"})
    with store() as s:
        ident = repo.token_identity(s, creds.credentials)
    if ident is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked token", {"WWW-Authenticate": "Bearer"})
    return Caller(*ident)


def require(role: str) -> Callable[..., Caller]:
    """A dependency that returns the caller if their role is at least ``role``, else 403."""

    def check(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
        if RANK[caller.role] < RANK[role]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs role {role}; token {caller.name!r} has {caller.role}")
        return caller

    return check


Viewer = Annotated[Caller, Depends(require("viewer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
Approver = Annotated[Caller, Depends(require("approver"))]
Admin = Annotated[Caller, Depends(require("admin"))]
