"""/control routes (see the module of each resource)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["control"])
