"""The ``gitpaas`` command: one click group (``group``), one module per noun (apps, config,
releases, ps, …) that parses arguments, calls an operation and formats its result, and the entry
point (``main``) that puts them together."""
