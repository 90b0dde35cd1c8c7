"""The web image of a heroku.yml app: says how it was built and what it was given."""

import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (f"web built with {Path('/app/built-with.txt').read_text().strip()}; "
                f"config from {os.environ.get('FROM_SETUP', 'nowhere')}; "
                f"redis {'attached' if os.environ.get('REDIS_URL') else 'missing'}; "
                f"started {'by its CMD' if '--from-cmd' in sys.argv else 'by heroku.yml run'}; "
                f"worker image here: {Path('/worker').exists()}\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
