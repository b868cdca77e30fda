#!/usr/bin/env python3
"""A web page on another origin signs in to latchkey from a real browser.

    cors_page.py BASE_URL PAGE_PORT

The caller starts latchkey with
``LATCHKEY_CORS_ORIGINS=http://127.0.0.1:PAGE_PORT``. This script registers a
fresh account (POST BASE_URL/register), serves a small HTML page from
``http://127.0.0.1:PAGE_PORT`` (Python's http.server; a different origin from
BASE_URL because the port differs), and opens it in headless Chromium
(Debian's /usr/bin/chromium, driven by Playwright's sync API). The page's
script runs

    fetch(BASE_URL + '/login', {method: 'POST', body: new URLSearchParams({username, password})})
    fetch(BASE_URL + '/get-resource', {headers: {Authorization: 'Bearer ' + token}})

(the second is preflighted: `Authorization` is not a CORS-safelisted header)
and writes what happened into the page, which must show success. The same page
is then served from a port *not* in LATCHKEY_CORS_ORIGINS, where the browser
must refuse to hand the login answer to the script (fetch rejects with a
TypeError), which shows that CORS is what lets the first page in.

Exit 0 on success, 1 when the browser's outcome is wrong, 2 for bad
arguments or a setup failure. Set CHROMIUM to use another browser binary.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import secrets
import sys
import threading

import requests
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>latchkey CORS check</title></head>
<body>
<pre id="result">running</pre>
<script>
const config = %(config)s;
async function run() {
  const out = {origin: location.origin, steps: []};
  try {
    const login = await fetch(config.base + '/login', {
      method: 'POST',
      body: new URLSearchParams({username: config.username, password: config.password}),
    });
    const tokens = await login.json();
    out.steps.push({step: 'login', status: login.status});
    if (!login.ok) throw new Error('login answered ' + login.status + ' ' + JSON.stringify(tokens));
    const resource = await fetch(config.base + '/get-resource', {
      headers: {Authorization: 'Bearer ' + tokens.access_token},
    });
    const body = await resource.json();
    out.steps.push({step: 'get-resource', status: resource.status, body: body,
                    request_id: resource.headers.get('x-request-id')});
    out.ok = resource.ok;
  } catch (error) {
    out.ok = false;
    out.error = {name: error.name, message: error.message};
  }
  const element = document.getElementById('result');
  element.textContent = JSON.stringify(out);
  element.dataset.done = 'yes';
}
run();
</script>
</body></html>
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("page_port", type=int, help="the port of the origin in LATCHKEY_CORS_ORIGINS")
    args = parser.parse_args()
    args.base_url = args.base_url.rstrip("/")
    return args


def serve_page(port: int, html: str) -> http.server.ThreadingHTTPServer:
    body = html.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            if self.path not in ("/", "/index.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def open_page(browser, url: str) -> tuple[dict, list[str], list[str]]:
    """Loads the page and waits for its script to finish.

    Returns the page's result, its console, and the CORS preflights the browser
    sent (from the DevTools protocol: Playwright's own request events do not
    show preflights), each as "OPTIONS <url> -> <status>".
    """
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    preflights: list[str] = []
    devtools.on(
        "Network.responseReceived",
        lambda event: event.get("type") == "Preflight"
        and preflights.append(f"OPTIONS {event['response']['url']} -> {event['response']['status']}"),
    )
    try:
        page.goto(url)
        page.wait_for_selector("#result[data-done=yes]", state="attached", timeout=20_000)
        result = json.loads(page.inner_text("#result"))
    finally:
        page.close()
    return result, console, preflights


def main() -> int:
    args = parse_args()
    username = "cors" + secrets.token_hex(5)
    password = "cors page " + secrets.token_hex(8)
    try:
        registered = requests.post(
            f"{args.base_url}/register",
            json={"username": username, "email": f"{username}@example.com", "password": password},
            timeout=30,
        )
    except requests.RequestException as error:
        print(f"FAIL: could not reach {args.base_url}/register: {error!r}")
        return 2
    if registered.status_code != 200:
        print(f"FAIL: registration answered {registered.status_code} {registered.text}")
        return 2

    html = PAGE % {
        "config": json.dumps({"base": args.base_url, "username": username, "password": password})
    }
    try:
        allowed = serve_page(args.page_port, html)
    except OSError as error:
        print(f"FAIL: cannot serve the page on 127.0.0.1:{args.page_port}: {error}")
        return 2
    other = serve_page(0, html)  # a random free port, not in LATCHKEY_CORS_ORIGINS
    allowed_origin = f"http://127.0.0.1:{args.page_port}"
    other_origin = f"http://127.0.0.1:{other.server_address[1]}"
    print(f"page origin {allowed_origin} (must be in LATCHKEY_CORS_ORIGINS), other origin {other_origin}")

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                good, _, good_preflights = open_page(browser, allowed_origin + "/")
                bad, bad_console, _ = open_page(browser, other_origin + "/")
            finally:
                browser.close()
    except PlaywrightError as error:
        print(f"FAIL: the browser run failed: {error}")
        return 2
    finally:
        allowed.shutdown()
        other.shutdown()

    print(f"allowed origin page: {json.dumps(good)}")
    print(f"allowed origin preflights: {good_preflights}")
    print(f"other origin page:   {json.dumps(bad)}")
    blocked = [line for line in bad_console if "CORS" in line]
    if blocked:
        print(f"other origin console: {blocked[0]}")

    problems = []
    steps = {step["step"]: step for step in good.get("steps", [])}
    if not good.get("ok"):
        problems.append(f"the page on {allowed_origin} did not succeed: {good.get('error') or good.get('steps')}")
    elif steps.get("get-resource", {}).get("body", {}).get("message") != "You have access to the protected resource":
        problems.append(f"the page on {allowed_origin} got an unexpected resource: {steps.get('get-resource')}")
    elif not steps["get-resource"].get("request_id"):
        problems.append("the page could not read the exposed x-request-id header")
    if f"OPTIONS {args.base_url}/get-resource -> 200" not in good_preflights:
        problems.append(f"the browser sent no answered preflight for /get-resource: {good_preflights}")
    error = bad.get("error") or {}
    if bad.get("ok") or bad.get("steps") or error.get("name") != "TypeError":
        problems.append(f"the page on {other_origin} was not refused by the browser with a TypeError: {bad}")
    if problems:
        print("FAIL: CORS from a browser page: " + " | ".join(problems))
        return 1
    print(
        f"OK: a page on {allowed_origin} logged in and read /get-resource through a preflighted request "
        f"in headless Chromium; the same page on {other_origin} was refused by the browser "
        f"({error['name']}: {error['message']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
