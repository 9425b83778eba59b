"""webhooks: not yet implemented (owned by the helper building it)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
