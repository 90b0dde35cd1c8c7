"""A web app with one real dependency from PyPI, installed by the python buildpack into /app/.venv."""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import humanize

BODY = (Path(__file__).parent / "BODY").read_text().strip()


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        text = (f"hello from python {BODY}: humanize {humanize.__version__} says 1234567 is "
                f"{humanize.intword(1234567)} (venv: {sys.prefix})\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


ThreadingHTTPServer(("", int(os.environ["PORT"])), Hello).serve_forever()
