"""Meta-tests: every hookspec is documented in docs/plugins.md and has its own test.

A new hook fails these tests until it has a ``### <name>`` section in
docs/plugins.md showing its signature and whether it is firstresult, and a
``test_hook_<name>`` function somewhere under tests/plugins/.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamline_core import hooks

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
TESTS = Path(__file__).resolve().parent


def hookspecs() -> dict[str, Callable[..., Any]]:
    """The hookspecs of ``streamline_core.hooks`` by name (pluggy marks each ``<project>_spec``)."""
    marker = f"{hooks.PROJECT}_spec"
    return {
        name: fn
        for name, fn in inspect.getmembers(hooks, inspect.isfunction)
        if hasattr(fn, marker)
    }


def doc_sections(text: str) -> dict[str, str]:
    """Markdown sections by heading (``### name`` -> its text up to the next heading).

    Lines inside fenced code blocks are never headings.
    """
    sections: dict[str, str] = {}
    current: str | None = None
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            current = line
            sections[current] = ""
            continue
        if current is not None:
            sections[current] += line + "\n"
    return sections


def python_blocks(section: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)


def documented_signature(section: str, name: str) -> ast.FunctionDef | None:
    for block in python_blocks(section):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return node
    return None


def spec_signature(fn: Callable[..., Any]) -> tuple[list[tuple[str, str]], str]:
    """Parameter names and annotations, and the return annotation, as written in hooks.py."""
    node = ast.parse(inspect.getsource(fn)).body[0]
    assert isinstance(node, ast.FunctionDef)
    return signature_of(node)


def signature_of(node: ast.FunctionDef) -> tuple[list[tuple[str, str]], str]:
    params = [
        (arg.arg, ast.unparse(arg.annotation) if arg.annotation else "") for arg in node.args.args
    ]
    return params, ast.unparse(node.returns) if node.returns else ""


def is_firstresult(fn: Callable[..., Any]) -> bool:
    return bool(getattr(fn, f"{hooks.PROJECT}_spec").get("firstresult"))


SPECS = hookspecs()
SECTIONS = doc_sections(DOC.read_text(encoding="utf-8"))


def test_the_hookspecs_are_found() -> None:
    assert set(SPECS) >= {
        "streamline_event",
        "streamline_before_step",
        "streamline_after_step",
        "streamline_step_error",
        "streamline_retry_delay",
        "streamline_poll_delay",
        "streamline_next_occurrence",
    }
    assert {name for name, fn in SPECS.items() if is_firstresult(fn)} == hooks.FIRSTRESULT_HOOKS


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hookspec_has_a_heading_in_the_plugin_docs(name: str) -> None:
    assert f"### {name}" in SECTIONS, f"docs/plugins.md has no '### {name}' section"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hookspec_signature_is_shown_as_in_hooks_py(name: str) -> None:
    section = SECTIONS.get(f"### {name}", "")
    node = documented_signature(section, name)
    assert node is not None, f"the '### {name}' section shows no `def {name}(...)` code block"
    assert signature_of(node) == spec_signature(SPECS[name])


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hookspec_section_says_whether_it_is_firstresult(name: str) -> None:
    section = SECTIONS.get(f"### {name}", "")
    expected = "yes" if is_firstresult(SPECS[name]) else "no"
    assert f"**firstresult: {expected}" in section
    sync_rule = "**Sync only.**" if is_firstresult(SPECS[name]) else "**May be async.**"
    assert sync_rule in section
    assert "**When:**" in section


def defined_test_names() -> set[str]:
    names: set[str] = set()
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hookspec_has_its_own_test(name: str) -> None:
    assert f"test_hook_{name}" in defined_test_names(), (
        f"no test_hook_{name} under tests/plugins/: prove the hook through an engine"
    )
