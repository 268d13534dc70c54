"""A stand-in service process for launcher tests: `python fake_service.py`.

It reads HUIBAO_HTTP_PORT like the real services and, by FAKE_SERVICE_MODE:
`ready` answers 200 on /health/ready; `exit` prints a message and exits 3 at once;
`never_ready` answers 503 forever; `spawn` is ready and also starts a grandchild that
sleeps (to check that process groups are cleaned up too); `die_after` is ready, then exits
4 after FAKE_SERVICE_DIE_AFTER seconds (default 1), every time it is started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FAKE = str(Path(__file__).resolve())


class _Handler(BaseHTTPRequestHandler):
    ready = True

    def do_GET(self) -> None:
        ok = self.ready and self.path.startswith("/health")
        body = b'{"status": "ready"}' if ok else b'{"status": "not_ready"}'
        self.send_response(200 if ok else 503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    mode = os.environ.get("FAKE_SERVICE_MODE", "ready")
    print(f"fake service starting in mode {mode}", flush=True)
    if mode == "exit":
        print("boom: the fake service refuses to start", flush=True)
        sys.exit(3)
    if mode == "spawn":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    _Handler.ready = mode != "never_ready"
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["HUIBAO_HTTP_PORT"])), _Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if mode == "die_after":
        import threading

        def die() -> None:
            print("the fake service dies on purpose", flush=True)
            os._exit(4)

        threading.Timer(float(os.environ.get("FAKE_SERVICE_DIE_AFTER", "1")), die).start()
    try:
        server.serve_forever()
    finally:
        print("fake service stopped", flush=True)


if __name__ == "__main__":
    main()
