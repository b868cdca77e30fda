#!/usr/bin/env python3
"""Four threads share one authlib OAuth2Session against a live latchkey.

    authlib_refresh.py BASE_URL USERNAME PASSWORD [--rounds N] [--requests M]

The session logs in with the password grant at BASE_URL/oauth/token (a public
client: no client secret; latchkey needs no client_id for this grant and
ignores the one authlib sends) and has ``token_endpoint`` set, so authlib
refreshes by itself whenever the token it holds has expired.

Each round the main thread marks the shared token as expired
(``expires_at`` in the past) while the four workers wait at a barrier; the
barrier then releases all four at once, and each calls
``session.get(BASE_URL/get-resource)``, so each sees the expired token and
sends a refresh with the same refresh token before any of the answers has
replaced it. Then every worker makes a few more requests on the refreshed
token. Only the first of those refreshes rotates the refresh token; the others
present a just-spent one, which latchkey answers with the same successor within
its grace window (LATCHKEY_REFRESH_GRACE_SECONDS, 10 s by default). Without the
window that reuse ends the session and this script fails.

Success: every request of every round answered 200, more than one thread
refreshed concurrently in at least one round (each round is reported), every
refresh of a round was answered the same successor, and the final refresh
token still refreshes (and its access token works).

The account must exist (POST /register). Exit 0 on success, 1 when the
session did not survive, 2 for bad arguments or a failed login.
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
from urllib.parse import parse_qs

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client import OAuthError

THREADS = 4
CLIENT_ID = "authlib-refresh-check"  # sent by authlib, ignored by latchkey


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("username")
    parser.add_argument("password")
    parser.add_argument("--rounds", type=int, default=6, help="forced concurrent expiries (default 6)")
    parser.add_argument("--requests", type=int, default=5, help="requests per thread per round (default 5)")
    args = parser.parse_args()
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be at least 1")
    args.base_url = args.base_url.rstrip("/")
    return args


class Recorder:
    """What the refresh hooks and the workers saw, per round, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.round = 0
        # round -> list of refresh tokens presented
        self.presented: dict[int, list[str]] = collections.defaultdict(list)
        # round -> list of (status, refresh_token answered or error)
        self.answered: dict[int, list[tuple[int, str]]] = collections.defaultdict(list)
        # round -> Counter of outcomes ("200", "401", "OAuthError: ...")
        self.outcomes: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
        self.errors: list[str] = []

    def on_refresh_request(self, url, headers, body):
        token = parse_qs(body).get("refresh_token", ["?"])[0]
        with self.lock:
            self.presented[self.round].append(token)
        return url, headers, body

    def on_refresh_response(self, response):
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        answer = payload.get("refresh_token") or f"{payload.get('error')}: {payload.get('error_description')}"
        with self.lock:
            self.answered[self.round].append((response.status_code, answer))
        return response

    def outcome(self, name: str, result: str) -> None:
        with self.lock:
            self.outcomes[self.round][result] += 1
            if result != "200" and len(self.errors) < 10:
                self.errors.append(f"round {self.round} {name}: {result}")


def short(token: str) -> str:
    return token[:8] + "…" if len(token) > 8 else token


def main() -> int:
    args = parse_args()
    token_endpoint = f"{args.base_url}/oauth/token"
    resource = f"{args.base_url}/get-resource"
    record = Recorder()

    session = OAuth2Session(
        client_id=CLIENT_ID,
        token_endpoint_auth_method="none",
        token_endpoint=token_endpoint,  # what makes authlib refresh on its own
        leeway=5,
        default_timeout=10,
    )
    session.register_compliance_hook("refresh_token_request", record.on_refresh_request)
    session.register_compliance_hook("refresh_token_response", record.on_refresh_response)

    try:
        session.fetch_token(
            token_endpoint, grant_type="password", username=args.username, password=args.password
        )
    except (OAuthError, requests.RequestException) as error:
        print(f"FAIL: password grant at {token_endpoint} failed: {error!r}")
        return 2
    if not session.token.get("refresh_token"):
        print(f"FAIL: the password grant answered no refresh_token: {sorted(session.token)}")
        return 2

    stop = threading.Event()
    # A worker that hangs breaks the barriers after a minute instead of hanging the script.
    start = threading.Barrier(THREADS + 1, timeout=60)
    done = threading.Barrier(THREADS + 1, timeout=60)

    def worker(index: int) -> None:
        name = f"thread-{index}"
        while True:
            try:
                start.wait()
            except threading.BrokenBarrierError:
                return
            if stop.is_set():
                return
            for n in range(args.requests):
                try:
                    response = session.get(resource)
                    result = str(response.status_code)
                except OAuthError as error:  # a refresh authlib could not make
                    result = f"refresh failed: {error.error}: {error.description}"
                except Exception as error:  # noqa: BLE001 - report anything
                    result = f"{type(error).__name__}: {error}"
                record.outcome(name, result)
                if n + 1 < args.requests:
                    time.sleep(0.1)
            try:
                done.wait()
            except threading.BrokenBarrierError:
                return

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()

    for number in range(1, args.rounds + 1):
        with record.lock:
            record.round = number
        # Every worker is parked at `start`: expire the shared token, then let
        # all four go at once.
        session.token["expires_at"] = int(time.time()) - 3600
        try:
            start.wait()
            done.wait()
        except threading.BrokenBarrierError:
            print(f"FAIL: round {number}: a worker thread hung or died ({'; '.join(record.errors)})")
            return 1
        presented = record.presented[number]
        answered = record.answered[number]
        successors = {answer for status, answer in answered if status == 200}
        print(
            f"round {number}: {len(presented)} refresh(es) sent "
            f"({len(set(presented))} distinct refresh token(s): {', '.join(short(t) for t in sorted(set(presented)))}); "
            f"answers {[status for status, _ in answered]} with {len(successors)} distinct successor(s); "
            f"requests {dict(record.outcomes[number])}"
        )
        if record.outcomes[number]["200"] != sum(record.outcomes[number].values()):
            # The session is gone; further rounds would only hammer the
            # token endpoint (authlib retries the refresh on every request).
            break
    rounds_run = number

    stop.set()
    start.wait()
    for thread in threads:
        thread.join(timeout=30)

    # The refresh token the session ended with must still work.
    with record.lock:
        record.round = rounds_run + 1
    final_error = None
    try:
        before = session.token["refresh_token"]
        session.refresh_token(token_endpoint)
        after = session.token["refresh_token"]
        final = session.get(resource)
        if final.status_code != 200:
            final_error = f"/get-resource after the final refresh answered {final.status_code} {final.text}"
        elif after == before:
            final_error = "the final refresh answered the same refresh token"
    except OAuthError as error:
        final_error = f"the final refresh token was refused: {error.error}: {error.description}"
    except requests.RequestException as error:
        final_error = f"the final refresh failed: {error!r}"

    total = sum(sum(c.values()) for n, c in record.outcomes.items())
    ok = sum(c["200"] for c in record.outcomes.values())
    refreshes = sum(len(record.presented[n]) for n in range(1, rounds_run + 1))
    concurrent_rounds = sum(
        1 for n in range(1, rounds_run + 1) if len(record.presented[n]) > 1
    )
    split_rounds = [
        n
        for n in range(1, rounds_run + 1)
        if len({a for s, a in record.answered[n] if s == 200}) > 1
    ]

    problems = []
    if rounds_run < args.rounds:
        problems.append(f"stopped after round {rounds_run} of {args.rounds}")
    if ok != total:
        failures = collections.Counter()
        for counter in record.outcomes.values():
            failures.update({result: n for result, n in counter.items() if result != "200"})
        first = min(n for n, c in record.outcomes.items() if sum(c.values()) != c["200"])
        problems.append(f"{total - ok} of {total} requests failed from round {first} on: {dict(failures)}")
    if final_error:
        problems.append(final_error)
    if concurrent_rounds == 0:
        problems.append("no round had two threads refreshing at once, so nothing was tested")
    if split_rounds:
        problems.append(f"rounds {split_rounds} answered different successors to one refresh token")
    if problems:
        print("FAIL: four threads of authlib's auto-refresh did not keep the session alive: " + " | ".join(problems))
        return 1
    print(
        f"OK: Four threads of authlib's auto-refresh keep the session alive: {args.rounds} rounds, "
        f"{refreshes} refreshes ({concurrent_rounds}/{args.rounds} rounds with concurrent refreshes of one token, "
        f"one successor each), {ok}/{total} requests answered 200, and the final refresh token still refreshes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
