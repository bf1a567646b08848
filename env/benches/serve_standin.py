#!/usr/bin/env python3
"""A SandboxFusion-style stand-in for the serve benchmark: an HTTP/1.1 keep-alive JSON server that
runs each request's code in a fresh `python3 -c` subprocess, as SandboxFusion and VerlTool's
Python tool do (without their containers or firejail, so this is the peer's floor, not its cost).

POST /run {"code": "..."} -> {"stdout": "...", "stderr": "...", "returncode": 0}
Prints "listening on http://HOST:PORT" once bound (port 0 picks a free one).
"""
import json
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        try:
            code = json.loads(self.rfile.read(length))["code"]
            run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 timeout=10)
            body = {"stdout": run.stdout, "stderr": run.stderr, "returncode": run.returncode}
            status = 200
        except Exception as e:  # the stand-in answers every request, as a sandbox must
            body, status = {"error": str(e)}, 400
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
