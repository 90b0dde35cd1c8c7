"""Git: bare app repositories, the installed hooks, and reading a pushed commit (dulwich)."""
