"""Kinds of source, found by looking: a module of collectors.sources that defines a
`SourceKind(...)` at its top level adds that kind to the configuration, with nothing to edit
elsewhere. Only modules that say `SourceKind(` are imported to find them, so loading the
configuration does not import the demo's simulator or the Postgres driver (the app loads it
for its metrics); a kind imports the heavy parts of its sources when it builds them.

A kind owns its sections of the TOML file, the environment variables that may set them and the
secrets it reads. `parse` turns the (merged) configuration into its settings, reporting each
problem through the shared validator, or returns None when the kind is not configured;
`build` turns those settings into sources, each with its schedule.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from collectors.config_secrets import Secrets
from collectors.config_validator import Validator

if TYPE_CHECKING:
    from collectors.schedules import ScheduleDict
    from collectors.sources.base import Source

Settings = TypeVar("Settings")
# name -> (source, schedule), as build_sources returns them.
Built: TypeAlias = "dict[str, tuple[Source, ScheduleDict]]"


@dataclass(frozen=True)
class SourceKind(Generic[Settings]):
    name: str  # unique; WorkbenchConfig.settings_of(kind) finds its settings by it
    sections: tuple[str, ...]  # dotted TOML tables it owns: ("railway",), ("probes.http",)
    parse: Callable[[Mapping[str, Any], Validator, Secrets], Settings | None]
    build: Callable[[Settings, Secrets, Path], Built]
    # Environment variables that set a plain setting and win over the file: {VAR: "a.key"}.
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # read from the environment or .streamlit/secrets.toml


@dataclass(frozen=True)
class Configured(Generic[Settings]):
    """A kind and the settings the configuration gave it."""

    kind: SourceKind[Settings]
    settings: Settings

    def sources(self, secrets: Secrets, data_dir: Path) -> Built:
        return self.kind.build(self.settings, secrets, data_dir)


def source_kinds() -> list[SourceKind[Any]]:
    """Every kind defined at the top level of a module of collectors.sources, in module order
    (a kind another module imports is counted once)."""
    import collectors.sources as package

    found: dict[str, SourceKind[Any]] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        name = f"{package.__name__}.{module_info.name}"
        if not _registers(name):
            continue
        module = importlib.import_module(name)
        for value in vars(module).values():
            if not isinstance(value, SourceKind) or found.get(value.name) is value:
                continue
            if value.name in found:
                raise TypeError(f"Two source kinds are named {value.name!r}.")
            found[value.name] = value
    return list(found.values())


def _registers(module_name: str) -> bool:
    """Whether the module's source mentions `SourceKind(` (read, not imported)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    try:
        return "SourceKind(" in Path(spec.origin).read_text(encoding="utf-8")
    except OSError:
        return False
