"""Test web app: answers with the text of /app/BODY and which dyno answered."""

import http.server
import os
import pathlib
import signal
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/env":
            body = "\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())) + "\n"
        else:
            body = f"{pathlib.Path('/app/BODY').read_text().strip()} from {os.environ.get('DYNO')}\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"listening on {os.environ['PORT']}", flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
