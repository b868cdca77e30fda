#!/usr/bin/env python3
"""Scale-out test, run by scripts/scale-out.sh (which makes the database and
the working directory and cleans both up): three latchkey instances on one
PostgreSQL database and one Redis, behind haproxy, under steady load from
worker threads that register, log in, refresh and call the protected route
through haproxy, in a loop. In turn:

  1. warm-up: a few seconds of load; nothing may fail;
  2. rolling restart: each instance gets SIGTERM (its /ready must answer 503
     while it still serves, haproxy must take it out, a request in flight
     when its listener closes must be answered, it must exit by itself), is
     started again on its port and must be back in haproxy before the next;
     nothing may fail, nor need haproxy's retries;
  3. SIGKILL: one instance is killed under load; only requests in flight on
     it may fail (at most one per worker); then it is started again and
     nothing more may fail;
  4. revocation: a session is logged out on instance 1; its access token must
     be refused by instances 2 and 3 within a second.

Prints each step, then one summary line; exits non-zero if any condition
fails, with the failed requests and the logs. Python 3 standard library only.
"""

import argparse
import csv
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

PASSWORD = "scale test passphrase 42"
# The account of the login sent across each listener's close.
STRAGGLER = f"straggler{os.getpid()}"
# Drain time each instance gets after SIGTERM; haproxy checks every 0.2 s.
SHUTDOWN_DELAY_SECONDS = 2
CHECK_INTERVAL_MS = 200
CHECK_RISE = 2
KILL_LOAD_SECONDS = 3
REVOCATION_LIMIT_SECONDS = 1.0
# Settings the server also reads without the LATCHKEY_ prefix.
UNPREFIXED_SETTINGS = {"DATABASE_URL", "SECRET_KEY", "ACCESS_TOKEN_EXPIRE_MINUTES", "RUST_LOG"}

started_at = time.monotonic()


def now():
    return time.monotonic() - started_at


def say(message):
    print(f"[{now():6.2f}s] {message}", file=sys.stderr, flush=True)


class Failed(Exception):
    """A condition of the test did not hold; the message says which."""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(what, condition, timeout, every=0.02):
    """Polls `condition` until it returns a true value, which is returned;
    raises Failed naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"{what} (waited {timeout} s)")
        time.sleep(every)


def call(port, method, path, body=None, headers=None, timeout=5):
    """One request on a fresh connection: (status, body), or (None, error)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as error:
        return None, repr(error)
    finally:
        connection.close()


def bearer(token):
    return {"authorization": f"Bearer {token}"}


FORM = {"content-type": "application/x-www-form-urlencoded"}


class Instance:
    """One latchkey process on a fixed port; restarts reuse port and log."""

    def __init__(self, number, args, work, public_port):
        self.number = number
        self.name = f"i{number}"
        self.port = free_port()
        self.log_path = os.path.join(work, f"instance-{number}.log")
        self.process = None
        # Only these settings: the server refuses unknown LATCHKEY_ variables
        # (LATCHKEY_BINARY, the tests' LATCHKEY_TEST_…) and the caller's own
        # configuration would change what is tested.
        inherited = {key: value for key, value in os.environ.items()
                     if not key.startswith("LATCHKEY_") and key not in UNPREFIXED_SETTINGS}
        self.environment = dict(
            inherited,
            LATCHKEY_LISTEN=f"127.0.0.1:{self.port}",
            LATCHKEY_DATABASE_URL=args.database_url,
            LATCHKEY_REDIS_URL=args.redis_url,
            LATCHKEY_REDIS_PREFIX=args.redis_prefix,
            # The URL clients use, haproxy's. Without it each instance names
            # itself (http://<its listen address>) as the tokens' issuer, and
            # refuses the others' tokens.
            LATCHKEY_PUBLIC_URL=f"http://127.0.0.1:{public_port}",
            # One load generator on one address would otherwise be throttled.
            LATCHKEY_RATE_LIMITS="off",
            LATCHKEY_SHUTDOWN_DELAY_SECONDS=str(SHUTDOWN_DELAY_SECONDS),
            LATCHKEY_LOG="warn",
        )
        self.binary = args.binary

    def start(self):
        with open(self.log_path, "a") as log:
            log.write(f"--- started at {now():.2f}s\n")
            log.flush()
            self.process = subprocess.Popen(
                [self.binary], env=self.environment, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log)

    def ready_status(self):
        return call(self.port, "GET", "/ready", timeout=2)[0]

    def wait_ready(self, timeout=60):
        def ready():
            if self.process.poll() is not None:
                raise Failed(f"{self.name} exited with {self.process.returncode} before it was ready")
            return self.ready_status() == 200
        wait_until(f"{self.name} did not answer /ready with 200", ready, timeout, every=0.05)

    def signal(self, number):
        self.process.send_signal(number)

    def wait_exit(self, timeout):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{self.name} did not exit within {timeout} s") from None

    def stop(self):
        """Cleanup: SIGINT (no drain), then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class HAProxy:
    """Debian's haproxy in the foreground, checking each instance's /ready."""

    def __init__(self, instances, work, port):
        self.port = port
        self.socket_path = os.path.join(work, "haproxy.sock")
        self.config_path = os.path.join(work, "haproxy.cfg")
        self.log_path = os.path.join(work, "haproxy.log")
        servers = "\n".join(
            f"    server {i.name} 127.0.0.1:{i.port}" for i in instances)
        # - A draining instance answers /ready 503: one failed check (fall 1,
        #   every 0.2 s) takes it out, well within its drain; two good ones
        #   (rise 2) bring a started one back.
        # - Retries, each on another instance (redispatch 1): a connection
        #   refused, or one closed cleanly before any response (an instance
        #   killed after reading the request). A replay is harmless here (a
        #   login opens another session, a refresh within the grace window
        #   answers the same successor) except for a registration the killed
        #   instance had committed: 400 "already registered". Not on a
        #   response timeout: the instance may still be working on it.
        #   haproxy 2.6 does not retry a connection reset (the kernel resets
        #   a killed process's connections that hold unread requests): it
        #   answers 502 or, for a request that is not the first on the
        #   client's connection, closes that connection without a response
        #   or a log line, for the client to retry as browsers do. All of
        #   these are requests in flight on the killed instance.
        # - No on-marked-down shutdown-sessions: a draining instance finishes
        #   what it has.
        # - Logs: only abnormal requests (dontlog-normal); -db adds state changes.
        config = f"""\
global
    log stderr format raw local0 info
    stats socket {self.socket_path} mode 600 level admin

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 1s
    timeout client 30s
    timeout server 35s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend latchkey
    bind 127.0.0.1:{self.port}
    default_backend instances

backend instances
    balance roundrobin
    http-reuse safe
    option httpchk
    http-check send meth GET uri /ready ver HTTP/1.1 hdr host localhost
    http-check expect status 200
    default-server check inter {CHECK_INTERVAL_MS} fall 1 rise {CHECK_RISE}
    http-response set-header x-served-by %[srv_name]
{servers}
"""
        with open(self.config_path, "w") as file:
            file.write(config)
        self.process = None

    def start(self):
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", self.config_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_until("haproxy did not answer on its stats socket", self._answers, 10)

    def _answers(self):
        if self.process.poll() is not None:
            raise Failed(f"haproxy exited with {self.process.returncode}")
        try:
            return self.states() is not None
        except OSError:
            return False

    def _rows(self):
        """The backend's rows of `show stat` on the stats socket, by name."""
        with socket.socket(socket.AF_UNIX) as stats:
            stats.settimeout(2)
            stats.connect(self.socket_path)
            stats.sendall(b"show stat\n")
            data = b""
            while chunk := stats.recv(65536):
                data += chunk
        rows = csv.DictReader(data.decode().lstrip("# ").splitlines())
        return {row["svname"]: row for row in rows if row["pxname"] == "instances"}

    def states(self):
        """{server name: status} ("UP", "DOWN", "DOWN 1/2" while rising...)."""
        return {name: row["status"] for name, row in self._rows().items()}

    def retries(self):
        """Requests haproxy has sent again so far (to the same server, or
        redispatched to another: each retry counts as one or the other)."""
        backend = self._rows()["BACKEND"]
        return int(backend["wretr"] or 0) + int(backend["wredis"] or 0)

    def wait_state(self, name, state, timeout):
        """Waits until haproxy reports `name` in `state` (its status begins
        with it: "DOWN 1/2" is still DOWN); returns the seconds waited."""
        begun = time.monotonic()
        wait_until(f"haproxy did not see {name} {state}",
                   lambda: self.states().get(name, "").startswith(state), timeout)
        return time.monotonic() - begun

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Load:
    """Worker threads looping register, login, refresh and the protected
    route through haproxy, each on its own keep-alive connection. Every
    request counts towards the phase current when it was sent."""

    GETS_PER_LOOP = 8

    def __init__(self, port, workers, run_id):
        self.port = port
        self.workers = workers
        self.run_id = run_id
        self.phase = "warm-up"
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.requests = {}  # phase -> count
        # (time sent, phase, route, status or error, server, client port)
        self.failures = []
        self.in_flight = [None] * workers  # each worker's request's phase
        self.threads = [threading.Thread(target=self._work, args=(n,), daemon=True)
                        for n in range(workers)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(40)

    def switch(self, phase):
        """Starts a phase once the previous one's requests have ended, so
        that a request counts where it ran, and a phase can begin with a
        kill without its predecessor taking the blame."""
        with self.lock:
            previous, self.phase = self.phase, phase
        wait_until(f"requests of {previous} still unanswered 30 s later",
                   lambda: previous not in self.in_flight, 30, every=0.005)

    def count(self, phase):
        with self.lock:
            return self.requests.get(phase, 0)

    def failed(self, phase):
        with self.lock:
            return [f for f in self.failures if f[1] == phase]

    def _request(self, worker, connection, method, path, body, headers):
        """One request on the worker's connection: the parsed JSON body (or
        True for an empty one) on a 2xx, else None, the failure recorded."""
        with self.lock:
            phase = self.in_flight[worker] = self.phase
        sent = now()
        server = client = "-"
        try:
            connection.request(method, path, body=body, headers=headers)
            # To find the request in haproxy's log (by its client port).
            client = connection.sock.getsockname()[1]
            response = connection.getresponse()
            data = response.read()
            server = response.getheader("x-served-by", "-")
            if 200 <= response.status < 300:
                outcome = json.loads(data) if data else True
            else:
                outcome = None
                what = f"{response.status} {data[:120]!r}"
        except (OSError, http.client.HTTPException, ValueError) as error:
            # The connection is in an unknown state: start a fresh one.
            connection.close()
            outcome = None
            what = repr(error)
        with self.lock:
            self.requests[phase] = self.requests.get(phase, 0) + 1
            if outcome is None:
                self.failures.append(
                    (sent, phase, f"{method} {path.split('?')[0]}", what, server, client))
        self.in_flight[worker] = None
        return outcome

    def _work(self, worker):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        loop = 0
        while not self.stopping.is_set():
            loop += 1
            name = f"s{self.run_id}w{worker}n{loop}"
            if not self._request(worker, connection, "POST", "/register", json.dumps(
                    {"username": name, "email": f"{name}@scale.example", "password": PASSWORD}),
                    {"content-type": "application/json"}):
                continue
            login = self._request(worker, connection, "POST", "/login",
                                  urllib.parse.urlencode({"username": name, "password": PASSWORD}),
                                  FORM)
            if not login:
                continue
            refreshed = self._request(worker, connection, "POST", "/oauth/token", urllib.parse.urlencode(
                {"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}), FORM)
            if not refreshed:
                continue
            for _ in range(self.GETS_PER_LOOP):
                if self.stopping.is_set():
                    break
                self._request(worker, connection, "GET", "/get-resource", None,
                              bearer(refreshed["access_token"]))
        connection.close()


def straggle(instance, since, outcome):
    """A login sent straight to a draining instance (haproxy no longer sends
    it any) whose body is finished only after the listener has closed: a
    request in flight across the close, which must still be answered."""
    body = urllib.parse.urlencode({"username": STRAGGLER, "password": PASSWORD}).encode()
    time.sleep(max(0.0, since + 0.5 - time.monotonic()))
    connection = http.client.HTTPConnection("127.0.0.1", instance.port, timeout=10)
    try:
        connection.putrequest("POST", "/login")
        connection.putheader("content-type", FORM["content-type"])
        connection.putheader("content-length", str(len(body)))
        connection.endheaders(body[:5])
        time.sleep(max(0.0, since + SHUTDOWN_DELAY_SECONDS + 1.0 - time.monotonic()))
        try:
            socket.create_connection(("127.0.0.1", instance.port), timeout=1).close()
            outcome.append(f"nothing to show: the listener was still open "
                           f"{SHUTDOWN_DELAY_SECONDS + 1.0} s after SIGTERM")
            return
        except ConnectionRefusedError:
            pass
        connection.send(body[5:])
        response = connection.getresponse()
        data = response.read()
        outcome.append(response.status if response.status == 200 else f"{response.status} {data!r}")
    except (OSError, http.client.HTTPException) as error:
        outcome.append(repr(error))
    finally:
        connection.close()


def rolling_restart(instances, proxy, load):
    """SIGTERM, drain, exit, start, back in haproxy: one instance at a time."""
    for instance in instances:
        terminated = time.monotonic()
        instance.signal(signal.SIGTERM)
        straggler = []
        straggling = threading.Thread(target=straggle, args=(instance, terminated, straggler),
                                      daemon=True)
        straggling.start()
        # /ready must answer 503 while the instance is still serving (not
        # refuse the connection: that would be a stop without a drain).
        status = wait_until(
            f"{instance.name}: /ready neither answered 503 nor stopped after SIGTERM",
            lambda: {503: 503, None: "gone"}.get(instance.ready_status()),
            SHUTDOWN_DELAY_SECONDS + 5)
        if status != 503:
            raise Failed(f"{instance.name}: after SIGTERM /ready never answered 503 "
                         f"(the instance stopped listening at once: no drain)")
        ready_503 = time.monotonic() - terminated
        proxy.wait_state(instance.name, "DOWN", SHUTDOWN_DELAY_SECONDS)
        out_of_haproxy = time.monotonic() - terminated
        code = instance.wait_exit(SHUTDOWN_DELAY_SECONDS + 30)
        exited = time.monotonic() - terminated
        straggling.join(15)
        if code != 0:
            raise Failed(f"{instance.name} exited with {code} after SIGTERM")
        if straggler != [200]:
            raise Failed(f"{instance.name}: a login in flight when its listener closed: "
                         f"{straggler[0] if straggler else 'no outcome'}")
        instance.start()
        instance.wait_ready()
        proxy.wait_state(instance.name, "UP", 5)
        back = time.monotonic() - terminated
        say(f"{instance.name}: /ready 503 after {ready_503:.2f} s, out of haproxy after "
            f"{out_of_haproxy:.2f} s, a login in flight across the listener's close answered, "
            f"exited (0) after {exited:.2f} s, back in haproxy after {back:.2f} s; "
            f"{len(load.failed('rolling restart'))} failed so far")


def register(port, name):
    status, body = call(port, "POST", "/register", json.dumps(
        {"username": name, "email": f"{name}@scale.example", "password": PASSWORD}),
        {"content-type": "application/json"})
    if status not in (200, 201):
        raise Failed(f"registering {name} answered {status} {body!r}")


def revocation(instances, proxy):
    """Logs in through haproxy, checks the token on every instance, logs out
    on instance 1 and times how long 2 and 3 keep accepting it."""
    name = f"revoke{os.getpid()}"
    register(proxy.port, name)
    status, body = call(proxy.port, "POST", "/login",
                        urllib.parse.urlencode({"username": name, "password": PASSWORD}), FORM)
    if status != 200:
        raise Failed(f"revocation: login answered {status} {body!r}")
    token = json.loads(body)["access_token"]
    for instance in instances:
        status, body = call(instance.port, "GET", "/get-resource", headers=bearer(token))
        if status != 200:
            raise Failed(f"revocation: the fresh token got {status} from {instance.name}: {body!r}")

    times = {}

    def watch(instance, since):
        # Every 20 ms until refused; give up after three times the limit.
        while time.monotonic() - since < 3 * REVOCATION_LIMIT_SECONDS:
            status, _ = call(instance.port, "GET", "/get-resource", headers=bearer(token))
            if status == 401:
                times[instance.name] = time.monotonic() - since
                return
            time.sleep(0.02)

    since = time.monotonic()
    status, body = call(instances[0].port, "POST", "/logout", headers=bearer(token))
    if status != 204:
        raise Failed(f"revocation: logout on {instances[0].name} answered {status} {body!r}")
    watchers = [threading.Thread(target=watch, args=(i, since)) for i in instances]
    for thread in watchers:
        thread.start()
    for thread in watchers:
        thread.join()
    return times


def show_failures(failures, limit=30):
    for sent, phase, route, what, server, client in failures[:limit]:
        print(f"  {sent:7.2f}s  {phase:16}  {route:18}  via {server:3}  from port {client}  {what}",
              file=sys.stderr)
    if len(failures) > limit:
        print(f"  … and {len(failures) - limit} more", file=sys.stderr)


def show_logs(paths, lines=40):
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path, errors="replace") as file:
            content = file.readlines()
        print(f"--- {os.path.basename(path)} (last {min(lines, len(content))} of "
              f"{len(content)} lines)", file=sys.stderr)
        sys.stderr.writelines(content[-lines:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--redis-prefix", required=True)
    parser.add_argument("--work", required=True, help="a directory for configuration and logs")
    parser.add_argument("--workers", type=int, default=6)
    args = parser.parse_args()
    # A timeout's SIGTERM unwinds through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))

    public_port = free_port()
    instances = [Instance(n, args, args.work, public_port) for n in (1, 2, 3)]
    proxy = HAProxy(instances, args.work, public_port)
    load = None
    problems = []
    try:
        # One after the other: the first migrates the fresh database.
        for instance in instances:
            instance.start()
            instance.wait_ready()
        say(f"instances on ports {', '.join(str(i.port) for i in instances)}")
        proxy.start()
        for instance in instances:
            proxy.wait_state(instance.name, "UP", 5)
        say(f"haproxy on port {proxy.port}, all three up")
        register(proxy.port, STRAGGLER)

        load = Load(proxy.port, args.workers, os.getpid())
        load.start()
        time.sleep(3)
        if not load.count("warm-up") or load.failed("warm-up"):
            raise Failed(f"warm-up: {load.count('warm-up')} requests, "
                         f"{len(load.failed('warm-up'))} failed")
        say(f"warm-up: {load.count('warm-up')} requests, none failed")

        load.switch("rolling restart")
        retried = proxy.retries()
        rolling_restart(instances, proxy, load)
        time.sleep(1)
        rolling = (load.count("rolling restart"), len(load.failed("rolling restart")))
        rolling_retried = proxy.retries() - retried
        say(f"rolling restart: {rolling[0]} requests, {rolling[1]} failed; "
            f"haproxy sent {rolling_retried} again")

        load.switch("SIGKILL")
        retried = proxy.retries()
        victim = instances[1]
        victim.signal(signal.SIGKILL)
        killed = time.monotonic()
        victim.wait_exit(5)
        proxy.wait_state(victim.name, "DOWN", 2)
        out = time.monotonic() - killed
        time.sleep(max(0.0, KILL_LOAD_SECONDS - out))
        load.switch("recovery")
        kill = (load.count("SIGKILL"), len(load.failed("SIGKILL")))
        kill_retried = proxy.retries() - retried
        say(f"SIGKILL {victim.name}: out of haproxy after {out:.2f} s; {kill[0]} requests "
            f"in {KILL_LOAD_SECONDS} s, {kill[1]} failed; haproxy sent {kill_retried} "
            f"again")
        show_failures(load.failed("SIGKILL"))
        victim.start()
        victim.wait_ready()
        proxy.wait_state(victim.name, "UP", 5)
        time.sleep(1)
        say(f"{victim.name} back; recovery: {load.count('recovery')} requests, "
            f"{len(load.failed('recovery'))} failed")

        load.switch("revocation")
        times = revocation(instances, proxy)
        time.sleep(0.5)
        load.stop()

        # The conditions, each one sentence when it fails.
        for phase in ("warm-up", "rolling restart", "recovery", "revocation"):
            if load.failed(phase):
                problems.append(f"{len(load.failed(phase))} requests failed during {phase} (none may)")
        # haproxy's retries would hide an instance that refuses or drops
        # requests when stopped; a drained one never gets any by then.
        if rolling_retried:
            problems.append(f"haproxy had to send {rolling_retried} requests again during the "
                            f"rolling restart: a stopping instance refused or dropped them")
        if kill[1] > args.workers:
            problems.append(f"{kill[1]} requests failed after SIGKILL; at most {args.workers} "
                            f"(one in flight per worker) may")
        reached = []
        for instance in instances[1:]:
            seconds = times.get(instance.name)
            took = "over 3 s" if seconds is None else f"{seconds:.2f} s"
            if seconds is None or seconds > REVOCATION_LIMIT_SECONDS:
                problems.append(f"revocation reached instance {instance.number} in {took} "
                                f"(at most {REVOCATION_LIMIT_SECONDS:g} s)")
            reached.append(f"instance {instance.number} in {took}")
        local = times.get(instances[0].name)
        say("revocation: instance 1 (where the logout was) refused the token after "
            + ("over 3 s" if local is None else f"{local:.2f} s"))
        print(f"scale-out: rolling restart: {rolling[0]} requests, {rolling[1]} failed; "
              f"SIGKILL: {kill[0]} requests, {kill[1]} failed (in flight); "
              f"revocation reached {', '.join(reached)}")
    except Failed as failure:
        problems.append(str(failure))
    except KeyboardInterrupt:
        print("scale-out: interrupted", file=sys.stderr)
        return 130
    finally:
        if load is not None:
            load.stop()
        for instance in instances:
            instance.stop()
        proxy.stop()

    if problems:
        for problem in problems:
            print(f"scale-out: FAILED: {problem}", file=sys.stderr)
        if load is not None and load.failures:
            print(f"failed requests ({len(load.failures)}):", file=sys.stderr)
            show_failures(load.failures)
        show_logs([i.log_path for i in instances] + [proxy.log_path])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
