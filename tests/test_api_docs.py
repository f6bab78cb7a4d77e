"""The API's reference in README.md is the one the code makes now (embedded/service/docs.py)."""

from __future__ import annotations

import runpy
import sys

import pytest

from stalk.embedded.service import docs
from stalk.embedded.service.app import build_app

from .conftest import ROOT


def test_the_readme_reference_is_current() -> None:
    written = docs.generated_part((ROOT / "README.md").read_text())
    assert written is not None, f"README.md lost its {docs.START} ... {docs.END} markers"
    assert written == docs.render(), (f"README.md's API reference is stale (a route changed): run "
                                      f"`.venv/bin/{docs.COMMAND}`")


def test_every_route_has_a_line() -> None:
    spec = build_app("").openapi()
    reference = docs.render(spec)
    for path, operations in spec["paths"].items():
        for method in operations:
            assert f"| {method.upper()} | `{path}` |" in reference


def test_a_line_shows_the_parameters_and_the_body() -> None:
    spec = {"paths": {"/api/v1/things/{name}/{verb}": {"post": {
        "tags": ["things"], "summary": "Do a | thing",
        "parameters": [{"name": "name", "in": "path", "schema": {"type": "string"}},
                       {"name": "verb", "in": "path", "schema": {"enum": ["start", "stop"], "type": "string"}},
                       {"name": "wait", "in": "query", "schema": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 5}}],
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Body"}}}}}}},
        "components": {"schemas": {"Body": {"properties": {"n": {"type": "integer"},
                                                           "ids": {"type": "array", "items": {"type": "string"}}},
                                            "required": ["n"]}}}}
    assert docs.render(spec).splitlines()[-1] == (
        "| POST | `/api/v1/things/{name}/{verb}` | Do a \\| thing | `verb` start/stop; `wait` number?; "
        "`limit` integer = 5; body: `n` integer, `ids`? [string] |")


@pytest.mark.filterwarnings("ignore:'stalk.embedded.service.docs' found in sys.modules:RuntimeWarning")
def test_the_command_prints_the_reference(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m stalk.embedded.service.docs`, run in this process."""
    monkeypatch.setattr(sys, "argv", ["docs"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("stalk.embedded.service.docs", run_name="__main__")
    assert exited.value.code == 0 and capsys.readouterr().out == docs.render()


def test_the_command_rewrites_only_the_generated_part(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{docs.START}\nold table\n{docs.END}\n\nafter\n")
    assert docs.main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{docs.END}\n\nafter\n")
    assert docs.generated_part(text) == docs.render() and "old table" not in text
