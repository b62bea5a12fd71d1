"""The module-level API of the original library: ``create_workflow``, ``configure``,
``default_engine``. The default engine is the only module-level state, and explicit.

Façade layer, above the engine: imports ``engine`` (lazily) and ``workflow``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamline_core.definition import StepDefaults
    from streamline_core.engine import Engine
    from streamline_core.store import Store
    from streamline_core.workflow import Workflow

__all__ = ["configure", "default_engine", "create_workflow"]

_default: Engine | None = None


def configure(
    store: Store | str | None = None, *, plugins: Iterable[object] = (), **engine_options: Any
) -> Engine:
    """Build the default engine (replacing any previous one) and return it.

    It starts its worker on the first ``start`` (``autostart``), so
    ``create_workflow(...).start(...)`` runs in-process as in the original library.
    """
    global _default
    from streamline_core.engine import Engine

    engine_options.setdefault("autostart", True)
    _default = Engine(store, plugins=plugins, **engine_options)
    return _default


def default_engine() -> Engine:
    """The default engine, configured from the environment on first use."""
    return _default if _default is not None else configure()


def create_workflow(
    name: str,
    steps: Mapping[str, Any] | None = None,
    *,
    context: Callable[[Any], Any] | Mapping[str, Any] | None = None,
    version: str = "1",
    defaults: StepDefaults | None = None,
    input_model: type[Any] | None = None,
    engine: Engine | None = None,
) -> Workflow:
    """Define a workflow on ``engine`` (default: :func:`default_engine`)."""
    return (engine or default_engine()).workflow(
        name, steps, context=context, version=version, defaults=defaults, input_model=input_model
    )
