"""``python -m gitpaas``: the gitpaas command (what git runs as the credential helper)."""

from gitpaas.cli.main import main

main()
