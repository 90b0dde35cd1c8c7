"""Test web app: answers with the text of /app/BODY and which dyno answered.

/health → "ok"; /slow → answers after a second (a request in flight during a swap); /crash →
the process exits with status 3 (the engine restarts it); /env → its environment. On SIGTERM it
stops accepting, finishes the requests in flight and exits 0, as a well-behaved app does.
"""

import http.server
import os
import pathlib
import signal
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            print("crashing on purpose", flush=True)
            os._exit(3)
        if self.path == "/health":
            body = "ok\n"
        elif self.path == "/env":
            body = "\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())) + "\n"
        else:
            if self.path == "/slow":
                time.sleep(1)
            body = f"{pathlib.Path('/app/BODY').read_text().strip()} from {os.environ.get('DYNO')}\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)


server = http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
server.daemon_threads = False  # server_close() waits for the requests in flight


def on_sigterm(*_):
    print("SIGTERM: finishing requests in flight", flush=True)
    threading.Thread(target=server.shutdown).start()


signal.signal(signal.SIGTERM, on_sigterm)
print(f"listening on {os.environ['PORT']}", flush=True)
server.serve_forever()
server.server_close()
print("stopped cleanly", flush=True)
