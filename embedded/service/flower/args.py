"""A request's arguments as Flower's handlers read them (tornado's get_argument): the query string and,
for a form-encoded body, its fields; the last value of a name wins. A bad one is a 400 naming it."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from stalk.embedded.control.inputs import shown
from stalk.embedded.service.flower.errors import FlowerError

MISSING: Any = object()
TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})
FALSE = frozenset({"n", "no", "f", "false", "off", "0"})


class Args:
    def __init__(self, request: Request, body: bytes) -> None:
        self.values: dict[str, str] = dict(request.query_params)
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if body and ctype == "application/x-www-form-urlencoded" and not body.lstrip().startswith((b"{", b"[")):
            try:
                self.values.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100))
            except (UnicodeDecodeError, ValueError) as exc:
                raise FlowerError(400, f"invalid form body: {exc}") from None

    def text(self, name: str, default: Any = MISSING) -> Any:
        value = self.values.get(name)
        if value is None:
            if default is MISSING:
                raise FlowerError(400, f"Missing argument {name}")
            return default
        value = value.strip()
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise FlowerError(400, f"Invalid argument {name}: control characters")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.text(name, None)
        if value is None:
            return default
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        raise FlowerError(400, f"Invalid argument '{shown(value, 40)}' of type 'bool'")

    def integer(self, name: str, default: Any = MISSING) -> Any:
        value = self.text(name, default)
        if value is None or value is default:
            return value
        try:
            return int(value)
        except ValueError:
            raise FlowerError(400, f"Invalid argument '{shown(value, 40)}' of type 'int'") from None

    def number(self, name: str, default: Any = MISSING) -> Any:
        value = self.text(name, default)
        if value is None or value is default:
            return value
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise FlowerError(400, f"Invalid argument '{shown(value, 40)}' of type 'float'")
        return number
