"""Modules loaded on first use: ``events = lazy("gitpaas.events")`` binds a stand-in whose first
attribute read imports the module (``importlib.import_module``: under the import lock, so two
threads reading at once import it once) and every read after goes to it.

For the command line: a command that only reads state (``gitpaas releases``, ``config``, ``ps``)
should not pay for importing the pipeline, the builders, nginx's templates and Docker's client,
most of a command's time otherwise. A module binds the heavy modules it needs only in some of its
functions this way, and the layers test (``tests/unit/test_layers.py``) reads ``lazy("gitpaas.…")``
as an import made on first use: it is listed there, and takes part in the search for import
cycles like any other.
"""

from __future__ import annotations

import importlib
from typing import Any


class _OnFirstUse:
    """Stands for a module until one of its names is read; then for the module itself."""

    def __init__(self, name: str) -> None:
        self.__dict__["_module_name"] = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.__dict__["_module_name"]), attribute)

    def __setattr__(self, attribute: str, value: Any) -> None:  # (tests patch names of modules)
        setattr(importlib.import_module(self.__dict__["_module_name"]), attribute, value)

    def __repr__(self) -> str:
        return f"<module {self.__dict__['_module_name']!r}, loaded on first use>"


def lazy(name: str) -> Any:
    """``name``, imported the first time one of its attributes is read."""
    return _OnFirstUse(name)
