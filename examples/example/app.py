"""The gitpaas example app: a tiny web server that says which release answered."""

import http.server
import json
import os
import pathlib

MIGRATIONS = pathlib.Path("/tmp/migrated")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok\n"
        else:
            body = json.dumps({
                "app": "example",
                "message": pathlib.Path("/app/MESSAGE").read_text().strip(),
                "dyno": os.environ.get("DYNO"),
            }).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if self.path == "/health" else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(f"{self.address_string()} {fmt % args}", flush=True)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    print(f"example listening on :{port}", flush=True)
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
