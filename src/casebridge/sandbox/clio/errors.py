"""Clio's error body: ``{"error": {"type": "<Name>", "message": "<text>"}}`` (both keys required)."""

from __future__ import annotations

from typing import Any


class ClioError(Exception):
    def __init__(
        self, status: int, type_: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message}}


def bad_request(message: str) -> ClioError:
    return ClioError(400, "BadRequestError", message)


def not_found(what: str, ident: object) -> ClioError:
    return ClioError(404, "RecordNotFound", f"The {what} with id {ident} could not be found.")


def invalid(message: str) -> ClioError:
    return ClioError(422, "ValidationError", message)


def unauthorized(message: str = "The access token is missing, invalid, expired or revoked.") -> ClioError:
    return ClioError(401, "InvalidTokenError", message, headers={"WWW-Authenticate": 'Bearer realm="Clio"'})
