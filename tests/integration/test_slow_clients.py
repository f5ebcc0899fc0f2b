"""Slow and hostile clients against the real daemon and a real Postgres: strangers sending a body
slowly cannot take the worker threads, a producer's body has a deadline, body readers are capped,
and /readyz says why without naming the database. Needs MESHHOOK_TEST_DATABASE_URL (set by
`make test`)."""

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import unittest
import uuid

import harness

SECRET = "e2e-slow-clients-secret-at-least-32-bytes"
PROJECT = str(uuid.uuid4())
WORKFLOW = str(uuid.uuid4())
STATISTICS = "/api/v1/statistics/execution-times"
SLOW_SOCKETS = 32


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims):
    signing_input = (b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." +
                     b64url(json.dumps(claims).encode()))
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def reader_token():
    now = int(time.time())
    return make_jwt({"sub": str(uuid.uuid4()), "role": "authenticated", "iat": now,
                     "exp": now + 600, "project_ids": [PROJECT]})


# What the strangers send: headers announcing a large body, then one byte now and then. None of
# them carries a credential.
STRANGER_HEADS = [
    b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 4000000\r\n\r\n[",
    b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token\r\n"
    b"Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n[",
    b"GET " + STATISTICS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n[",
    b"POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n[",
    b"POST /no/such/path HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n",
]


class SlowStrangers:
    """SLOW_SOCKETS connections that each announce a body and dribble one byte every 0.5 s;
    one the server closes is opened again at once, as an attacker would. Stops by itself
    after `limit` seconds."""

    def __init__(self, port, limit=30.0):
        self.port = port
        self.limit = limit
        self.stop_event = threading.Event()
        self.opened = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=10)

    def _open(self, i):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        s.sendall(STRANGER_HEADS[i % len(STRANGER_HEADS)])
        s.setblocking(False)
        self.opened += 1
        return s

    def _run(self):
        deadline = time.monotonic() + self.limit
        sockets = [None] * SLOW_SOCKETS
        try:
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                for i in range(SLOW_SOCKETS):
                    try:
                        if sockets[i] is None:
                            sockets[i] = self._open(i)
                            continue
                        try:
                            if sockets[i].recv(4096) == b"":
                                raise ConnectionResetError("closed by the server")
                        except BlockingIOError:
                            pass  # no answer yet: still held open
                        sockets[i].send(b" ")
                    except OSError:
                        if sockets[i] is not None:
                            sockets[i].close()
                        sockets[i] = None
                self.stop_event.wait(0.5)
        finally:
            for s in sockets:
                if s is not None:
                    s.close()


def timed(method, url, **kwargs):
    started = time.monotonic()
    r = harness.request(method, url, timeout=5, **kwargs)
    return r, time.monotonic() - started


class SlowBodies(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = harness.MigratedDatabase("slow_clients")
        cls.daemon = harness.Daemon(env={
            "MESHHOOK_STATS_DATABASE_URL": cls.db.url,
            "MESHHOOK_STATS_AUTH_JWT_SECRET": SECRET,
            "MESHHOOK_STATS_AUTH_PROJECT_IDS_CLAIM": "project_ids",
            "MESHHOOK_STATS_API_REQUEST_TIMEOUT_MS": "2000",
        }).start()
        harness.wait_until(lambda: harness.request("GET", cls.daemon.api + "/readyz").status == 200,
                           what="the daemon to be ready")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()
        cls.db.drop()

    def test_strangers_sending_bodies_slowly_do_not_stop_ingest_statistics_or_readyz(self):
        api = self.daemon.api
        with SlowStrangers(self.daemon.api_port) as strangers:
            harness.wait_until(lambda: strangers.opened >= SLOW_SOCKETS, timeout=10,
                               what="the slow connections to open")
            time.sleep(1.5)  # they have dribbled for a while
            for _ in range(3):
                event = harness.run_event(WORKFLOW, PROJECT, 120)
                r, took = timed("POST", api + "/api/v1/runs", body=json.dumps([event]),
                                headers={"Authorization": f"Bearer {harness.INGEST_TOKEN}",
                                         "Content-Type": "application/json"})
                self.assertEqual(r.status, 202, r.text)
                self.assertLess(took, 1.0, "ingest")

                r, took = timed("GET", api + STATISTICS + "?workflow_id=" + WORKFLOW,
                                headers={"Authorization": "Bearer " + reader_token()})
                self.assertEqual(r.status, 200, r.text)
                self.assertLess(took, 1.0, "statistics")

                r, took = timed("GET", api + "/readyz")
                self.assertEqual(r.status, 200, r.text)
                self.assertLess(took, 1.0, "readyz")
                time.sleep(0.5)
            self.assertTrue(strangers.thread.is_alive(), "the strangers gave up early")

    def test_a_stranger_with_a_body_is_answered_and_let_go_without_it_being_read(self):
        for head in STRANGER_HEADS:
            answer, closed = b"", False
            with socket.create_connection(("127.0.0.1", self.daemon.api_port), timeout=2) as s:
                s.sendall(head)
                try:
                    for _ in range(20):  # the server hangs up although bytes keep coming
                        chunk = s.recv(4096)
                        if chunk == b"":
                            closed = True
                            break
                        answer += chunk
                        s.sendall(b" ")
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                except socket.timeout:
                    pass
            self.assertTrue(closed, head)
            self.assertRegex(answer, rb"^HTTP/1.1 40[145] ", head)
            self.assertIn(b'"error":', answer)

    def test_a_producer_sending_its_body_slowly_is_cut_at_the_deadline(self):
        head = (b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + harness.INGEST_TOKEN.encode() +
                b"\r\nContent-Length: 60000\r\n\r\n[")
        started = time.monotonic()
        answer = b""
        closed_after = None
        with socket.create_connection(("127.0.0.1", self.daemon.api_port), timeout=5) as s:
            s.sendall(head)
            s.settimeout(0.3)
            while closed_after is None and time.monotonic() - started < 15:
                try:
                    chunk = s.recv(4096)
                    if chunk == b"":
                        closed_after = time.monotonic() - started
                    answer += chunk
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    closed_after = time.monotonic() - started
                if closed_after is None:
                    try:
                        s.sendall(b" ")  # one byte every 0.3 s: each read sees fresh data
                    except OSError:
                        closed_after = time.monotonic() - started
        self.assertIsNotNone(closed_after, "a body dribbled for 15 s was still being read")
        self.assertGreaterEqual(closed_after, 1.5)  # the deadline is 2 s after the headers
        self.assertLess(closed_after, 5.0)
        if answer:
            self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer)
            self.assertIn(b'"error":"request_timeout"', answer)


class BodyReaderCap(unittest.TestCase):
    def test_producers_over_the_cap_are_told_to_retry(self):
        d = harness.Daemon(env={"MESHHOOK_STATS_API_THREADS": "4",
                                "MESHHOOK_STATS_API_MAX_BODY_READERS": "2",
                                "MESHHOOK_STATS_API_REQUEST_TIMEOUT_MS": "5000"}).start()
        head = (b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + harness.INGEST_TOKEN.encode() +
                b"\r\nContent-Length: 1000\r\n\r\n[")
        held = []
        try:
            for _ in range(2):
                s = socket.create_connection(("127.0.0.1", d.api_port), timeout=5)
                s.sendall(head)
                held.append(s)
            time.sleep(0.5)  # both are reading their body
            answer = b""
            with socket.create_connection(("127.0.0.1", d.api_port), timeout=5) as s:
                s.sendall(head)
                while chunk := s.recv(4096):  # the server closes after its answer
                    answer += chunk
            self.assertTrue(answer.startswith(b"HTTP/1.1 503 "), answer)
            self.assertIn(b"Retry-After: 1", answer)
            self.assertIn(b'"error":"busy"', answer)
            r, took = timed("GET", d.api + "/readyz")
            self.assertEqual(r.status, 200, r.text)
            self.assertLess(took, 1.0)
            # Once they are gone, a producer is read again.
            for s in held:
                s.close()
            held = []
            harness.wait_until(
                lambda: d.post_runs([harness.run_event(WORKFLOW, PROJECT, 50)]).status == 202,
                timeout=10, what="a producer to be read again")
        finally:
            for s in held:
                s.close()
            d.cleanup()


class Readiness(unittest.TestCase):
    def test_readyz_gives_a_fixed_reason_and_logs_the_details(self):
        port = harness.free_port()  # nothing listens there
        d = harness.Daemon(env={
            "MESHHOOK_STATS_DATABASE_URL":
                f"postgresql://secret_user@127.0.0.1:{port}/secret_database?connect_timeout=2",
        }).start()
        try:
            r = harness.request("GET", d.api + "/readyz")
            self.assertEqual(r.status, 503, r.text)
            self.assertEqual(r.json(), {"status": "not_ready", "database": "down",
                                        "reason": "database_unreachable"})
            for secret in ("secret_user", "secret_database", str(port), "127.0.0.1"):
                self.assertNotIn(secret, r.text)
            harness.wait_until(lambda: "readyz: not ready (database_unreachable)" in d.read_log(),
                               timeout=10, what="the details in the log")
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
