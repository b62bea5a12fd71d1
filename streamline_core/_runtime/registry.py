"""``Registry``: the workflow specs an engine has registered, by name and version.

Bottom of the runtime: imports the workflow spec and errors. A worker claims
only the versions registered here (:meth:`Registry.versions`).
"""

from __future__ import annotations

from streamline_core._runtime.slots import check_supported
from streamline_core.errors import ValidationError, WorkflowNotFoundError
from streamline_core.run import WorkflowRun
from streamline_core.workflow_spec import WorkflowSpec

__all__ = ["Registry"]


class Registry:
    """Workflow specs by name, then version (in registration order)."""

    def __init__(self) -> None:
        self._specs: dict[str, dict[str, WorkflowSpec]] = {}
        self.limits_supported = True
        """Whether the store enforces flow control (set by the runtime from its store)."""

    def add(self, spec: WorkflowSpec) -> WorkflowSpec:
        """Register ``spec``; an equal one already registered is returned instead.

        Raises:
            ValidationError: a different definition holds the same name and version,
                or ``spec`` is flow-controlled and the store cannot enforce it.
        """
        check_supported(spec, self.limits_supported)
        versions = self._specs.setdefault(spec.name, {})
        existing = versions.get(spec.version)
        if existing is not None:
            if existing.same_as(spec):
                return existing
            raise ValidationError(
                f"workflow {spec.name!r} version {spec.version!r} is already registered with a "
                "different definition; give the new one another version"
            )
        versions[spec.version] = spec
        return spec

    def get(self, name: str, version: str | None = None) -> WorkflowSpec:
        """A registered spec (the latest registered version when ``version`` is None).

        Raises:
            WorkflowNotFoundError: no such workflow or version.
        """
        versions = self._specs.get(name)
        if not versions:
            raise WorkflowNotFoundError(f"no workflow named {name!r} is registered")
        if version is None:
            return list(versions.values())[-1]
        try:
            return versions[version]
        except KeyError:
            raise WorkflowNotFoundError(
                f"workflow {name!r} has no registered version {version!r}"
            ) from None

    def for_run(self, run: WorkflowRun) -> WorkflowSpec | None:
        """The spec that runs ``run`` (its workflow and version), if registered here."""
        versions = self._specs.get(run.workflow_id)
        return None if not versions else versions.get(run.workflow_version)

    def specs(self) -> list[WorkflowSpec]:
        """Every registered spec, every version, in registration order per name."""
        return [spec for versions in self._specs.values() for spec in versions.values()]

    @property
    def names(self) -> frozenset[str]:
        """Names of every registered workflow."""
        return frozenset(self._specs)

    def versions(self) -> dict[str, tuple[str, ...]]:
        """Workflow name -> versions registered here: what this worker may claim."""
        return {name: tuple(versions) for name, versions in self._specs.items() if versions}

    def claim_sets(self) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
        """``(plain, limited)`` versions: what ``claim`` and ``claim_limited`` may lease."""
        plain: dict[str, tuple[str, ...]] = {}
        limited: dict[str, tuple[str, ...]] = {}
        for name, versions in self._specs.items():
            for version, spec in versions.items():
                target = limited if spec.limited else plain
                target[name] = (*target.get(name, ()), version)
        return plain, limited
