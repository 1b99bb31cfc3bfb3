"""Secrets: keys, tokens, database URLs and webhook URLs, from the environment or
.streamlit/secrets.toml only (never the TOML file), and never shown in a repr or a log line."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


class Secret:
    """A secret value that never prints itself."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str) -> None:
        self._value = value
        self.origin = origin

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('***' from {self.origin})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


class Secrets(Mapping[str, Secret]):
    """The secrets found, by name."""

    def __init__(self, found: Mapping[str, Secret] | None = None) -> None:
        self._found = dict(found or {})

    def __getitem__(self, name: str) -> Secret:
        return self._found[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)

    def value(self, *names: str) -> str | None:
        """The first of `names` that is set (a setting may have alternatives)."""
        for name in names:
            secret = self._found.get(name)
            if secret:
                return secret.reveal()
        return None

    def __repr__(self) -> str:
        return f"Secrets({sorted(self._found)}, values hidden)"


def read_secrets(config_file: Path | None, env: Mapping[str, str], names: Iterable[str]) -> Secrets:
    """`names` from .streamlit/secrets.toml (flat, or under [workbench]), beside the config file,
    the repo or the working directory; the environment wins."""
    names = tuple(dict.fromkeys(names))
    found: dict[str, Secret] = {}
    candidates = []
    if config_file is not None:
        candidates.append(config_file.parent / ".streamlit" / "secrets.toml")
    candidates += [
        REPO_ROOT / ".streamlit" / "secrets.toml",
        Path.cwd() / ".streamlit" / "secrets.toml",
    ]
    for candidate in dict.fromkeys(candidates):
        if not candidate.is_file():
            continue
        try:
            data = tomllib.loads(candidate.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue  # Streamlit reports a broken secrets file itself
        flat = dict(data)
        nested = data.get("workbench")
        if isinstance(nested, dict):
            flat.update(nested)
        for name in names:
            value = flat.get(name)
            if isinstance(value, str) and name not in found:
                found[name] = Secret(value, str(candidate))
    for name in names:
        if env.get(name):
            found[name] = Secret(env[name], f"env {name}")
    return Secrets(found)
