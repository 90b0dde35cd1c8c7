"""A small WSGI app whose dependencies uv installed: says which Python runs it, and what its build hooks left."""

import platform
from pathlib import Path

import gunicorn


def hooks() -> str:
    left = [Path(name).read_text().strip() for name in ("pre_compile.txt", "post_compile.txt") if Path(name).exists()]
    return f" [{'; '.join(left)}]" if left else ""


def app(environ, start_response):
    body = f"hello from a uv app on Python {platform.python_version()} (gunicorn {gunicorn.__version__}){hooks()}\n"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
