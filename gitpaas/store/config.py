"""Config vars on disk: ``apps/NAME/config.json``, mode 0600 (they are secrets)."""

from __future__ import annotations

from pathlib import Path

from gitpaas.store.files import read_json, write_json

CONFIG_MODE = 0o600


class ConfigStore:
    def __init__(self, app_dir: Path) -> None:
        self.path = app_dir / "config.json"

    def get(self) -> dict[str, str]:
        try:
            return dict(read_json(self.path))
        except FileNotFoundError:
            return {}

    def replace(self, values: dict[str, str]) -> None:
        write_json(self.path, dict(sorted(values.items())), mode=CONFIG_MODE)
