"""Request and response shapes for linked services.

The secret (an API key, a password or an OAuth2 client secret) is write-only: requests may send it,
responses only say ``has_secret``. Auth settings that are not secret (header name, user name, token
URL, client id, scope) are readable.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from casebridge.kit.etag import etag_for
from casebridge.kit.schemas import StrictModel
from casebridge.models import LinkedService

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,99}$"
ServiceName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=NAME_PATTERN),
    Field(
        description="How workflows refer to the service: lowercase letters, digits, '-' and '_'.",
        examples=["finance"],
    ),
]
HeaderName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
]
Secret = Annotated[SecretStr, Field(description="Write-only; never returned, logged or put in events.")]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"'{value}' is not an absolute http(s) URL")
    if parts.username or parts.password:
        raise ValueError("put credentials in the auth settings and the secret, not in the URL")
    if parts.query or parts.fragment:
        raise ValueError("a base URL has no query or fragment")
    return value


def _url_or_path(value: str) -> str:
    if value.startswith("/"):
        return value
    return _http_url(value)


BaseUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_http_url),
    Field(examples=["https://finance.example.com/api"]),
]
TokenUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_url_or_path),
    Field(description="Absolute URL, or a path relative to the base URL's host.", examples=["/oauth/token"]),
]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class NoAuth(StrictModel):
    type: Literal["none"] = "none"


class ApiKeyAuth(StrictModel):
    """The secret is sent in a header: `Authorization: Bearer <key>` unless `header_name` says otherwise
    (for example `X-API-Key`, sent with no prefix)."""

    type: Literal["api_key"]
    header_name: HeaderName = "Authorization"
    prefix: Annotated[str, StringConstraints(max_length=50)] | None = Field(
        default=None,
        description="Put before the key; defaults to 'Bearer ' for the Authorization header, else nothing.",
    )


class BasicAuth(StrictModel):
    """HTTP Basic: `username` here, the password as the secret."""

    type: Literal["basic"]
    username: Short


class OAuth2ClientCredentials(StrictModel):
    """OAuth2 client credentials: the client secret is the secret. The access token is cached until
    shortly before it expires and fetched again once when the service answers 401."""

    type: Literal["oauth2_client_credentials"]
    token_url: TokenUrl
    client_id: Short
    scope: Short | None = None
    audience: Short | None = None
    client_auth: Literal["client_secret_post", "client_secret_basic"] = Field(
        default="client_secret_post",
        description="Send client id and secret in the form body (default) or as HTTP Basic.",
    )


AUTH_TYPES = ("none", "api_key", "basic", "oauth2_client_credentials")
_TYPE_MESSAGE = f"auth.type must be one of: {', '.join(AUTH_TYPES)}"


def _untagged(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Report errors at the body's own paths (``body.auth.username``, not ``body.auth.basic.username``)."""
    try:
        return handler(value)
    except ValidationError as exc:
        details = []
        for error in exc.errors():
            loc, kind, message = tuple(error["loc"]), error["type"], error["msg"]
            if kind in ("union_tag_not_found", "union_tag_invalid"):
                loc, kind, message = ("type",), "literal_error", _TYPE_MESSAGE
            elif loc and loc[0] in AUTH_TYPES:
                loc = loc[1:]
            details.append(
                InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=error["input"])
            )
        raise ValidationError.from_exception_data(exc.title, details) from None


Auth = Annotated[
    NoAuth | ApiKeyAuth | BasicAuth | OAuth2ClientCredentials, Discriminator("type"), WrapValidator(_untagged)
]
NEEDS_SECRET: frozenset[str] = frozenset({"api_key", "basic", "oauth2_client_credentials"})

Timeout = Annotated[float, Field(gt=0, le=300, description="Seconds per request.")]


class LinkedServiceCreate(StrictModel):
    name: ServiceName
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    base_url: BaseUrl
    auth: Auth = Field(default_factory=NoAuth)
    secret: Secret | None = None
    timeout_seconds: Timeout = 10.0


class LinkedServiceUpdate(StrictModel):
    """Only the fields sent change. `auth`, when sent, replaces the auth settings; the stored secret is
    kept unless `secret` is sent (`null` removes it)."""

    name: ServiceName | None = None
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    base_url: BaseUrl | None = None
    auth: Auth | None = None
    secret: Secret | None = None
    timeout_seconds: Timeout | None = None


class LinkedServiceOut(BaseModel):
    id: uuid.UUID
    etag: str
    name: str
    description: str | None
    base_url: str
    auth: dict[str, Any] = Field(description="The auth settings without the secret.")
    has_secret: bool
    timeout_seconds: float
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: LinkedService) -> LinkedServiceOut:
        return cls(
            id=s.id,
            etag=etag_for(s.id, s.version),
            name=s.name,
            description=s.description,
            base_url=s.base_url,
            auth={"type": s.auth_type, **(s.auth_config or {})},
            has_secret=s.secret_encrypted is not None,
            timeout_seconds=s.timeout_seconds,
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


class ConnectionTestIn(StrictModel):
    method: Literal["GET", "HEAD", "OPTIONS"] = "GET"
    path: Annotated[str, StringConstraints(max_length=2000)] = Field(
        default="/", description="Relative to the base URL."
    )


class ConnectionTestOut(BaseModel):
    ok: bool = Field(description="True when the service answered with a 2xx or 3xx status.")
    status: int | None = Field(description="The HTTP status, or null when no answer came.")
    elapsed_ms: int
    error: str | None = Field(description="Why it failed; secrets are redacted.")
