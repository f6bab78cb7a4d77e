"""What the control routes share: control's errors as API problems, and answers as JSON whatever they hold."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from stalk.embedded.control import BadInput, ControlError, Problem, SubmitError
from stalk.embedded.service.codec import adapter
from stalk.embedded.service.problems import ApiProblem
from stalk.embedded.service.responses import JSONResponse

T = TypeVar("T")


@contextmanager
def acting(unknown: Callable[[BadInput], bool] | None = None) -> Iterator[None]:
    """SubmitError -> 400 with its problems; BadInput -> 400 (404 when `unknown(exc)`: it names a worker,
    entry, queue or group nobody knows); any other ControlError (broker unreachable, no answer) -> 503."""
    try:
        yield
    except SubmitError as exc:
        message = str(exc)
        raise ApiProblem(400, message if message.startswith("not sent") else f"not sent: {message}",
                         problems=problems_json(exc.problems)) from None
    except BadInput as exc:
        raise ApiProblem(404 if unknown is not None and unknown(exc) else 400, str(exc)) from None
    except ControlError as exc:
        raise ApiProblem(503, str(exc)) from None


def problems_json(problems: list[Problem]) -> list[dict[str, Any]]:
    return adapter(list[Problem]).dump_python(problems, mode="json")


def as_json(value: Any, tp: Any = None, status: int = 200) -> JSONResponse:
    """`value` (of type `tp`) as a response; what JSON cannot hold (a kombu object in a beat entry's
    options, a worker's odd reply) goes as its repr rather than failing the whole answer."""
    data = adapter(tp if tp is not None else type(value)).dump_python(value, mode="json", fallback=repr)
    return JSONResponse(data, status_code=status)
