"""A webhook receiver for the tests: verifies every delivery with the
Standard Webhooks reference library (PyPI `standardwebhooks`) and appends
each verified one to a file, one JSON line: its webhook-id, type and data.
Deliveries that do not verify are answered 400 and not recorded.

    python3 receiver.py PORT SECRET OUTPUT
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PORT, SECRET, OUTPUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
verifier = Webhook(SECRET)
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {key.lower(): value for key, value in self.headers.items()}
        try:
            payload = verifier.verify(body, headers)
        except WebhookVerificationError as error:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(str(error).encode())
            return
        with lock, open(OUTPUT, "a") as file:
            file.write(json.dumps({
                "id": headers["webhook-id"],
                "type": payload["type"],
                "data": payload["data"],
            }) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
