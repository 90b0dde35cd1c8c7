"""Never runs: gitpaas refuses the push before installing anything (no stack has Python 3.9)."""
raise SystemExit("unreachable")
