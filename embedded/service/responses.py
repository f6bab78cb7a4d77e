"""JSON responses that carry any text a task produced: a lone surrogate (a task's str from undecodable
bytes) cannot be UTF-8, so non-ASCII goes as \\u escapes (valid JSON, read back the same by json.loads)."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse as _StarletteJSON


class JSONResponse(_StarletteJSON):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
