"""A small WSGI app whose dependencies poetry installed: says which Python runs it."""

import platform

import gunicorn


def app(environ, start_response):
    body = f"hello from a poetry app on Python {platform.python_version()} (gunicorn {gunicorn.__version__})\n"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
