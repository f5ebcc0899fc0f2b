"""Security through the real daemon: JWT auth of the statistics API, tenant isolation (row level
security decides), ingest and read credentials kept apart, hostile parameters, TLS with a
certificate made at test time, and a slow-loris client. Needs MESHHOOK_TEST_DATABASE_URL
(set by `make test`)."""

import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import uuid

import harness

SECRET = "e2e-test-secret-that-is-at-least-32-bytes-long"
AUDIENCE = "authenticated"
ISSUER = "https://meshhook.example/auth/v1"
PROJECT_A = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
PROJECT_B = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
WORKFLOW_A = "aaaaaaaa-0000-4000-8000-00000000000a"
WORKFLOW_B = "bbbbbbbb-0000-4000-8000-00000000000b"
WORKFLOW_NONE = "cccccccc-0000-4000-8000-00000000000c"
STATISTICS = "/api/v1/statistics/execution-times"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=SECRET, header=None):
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def claims_for(project, **overrides):
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "role": "authenticated", "aud": AUDIENCE, "iss": ISSUER,
              "iat": now, "exp": now + 600, "project_ids": [project]}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def daemon_env(database_url, **extra):
    """The environment of a daemon on database_url that verifies this module's JWTs, the
    caller's projects listed in their project_ids claim."""
    return {"MESHHOOK_STATS_DATABASE_URL": database_url,
            "MESHHOOK_STATS_AUTH_JWT_SECRET": SECRET,
            "MESHHOOK_STATS_AUTH_JWT_AUDIENCE": AUDIENCE,
            "MESHHOOK_STATS_AUTH_JWT_ISSUER": ISSUER,
            "MESHHOOK_STATS_AUTH_PROJECT_IDS_CLAIM": "project_ids", **extra}


def comparable(response, workflow_id):
    """A statistics answer without what differs by design: the asked-for id and the instant
    the range was resolved at (end defaults to now)."""
    body = json.loads(response.text.replace(workflow_id, "X"))
    for key in ("start", "end"):
        body.get("filters", {}).pop(key, None)
    return response.status, body


class Tenancy(harness.MigratedDatabase):
    """A migrated database of its own holding runs of two projects."""

    def __init__(self):
        super().__init__("security")
        rows = []
        for project, workflow, n in ((PROJECT_A, WORKFLOW_A, 2), (PROJECT_B, WORKFLOW_B, 3)):
            for i in range(n):
                rows.append(f"(gen_random_uuid(), '{project}', '{workflow}', 'succeeded', "
                            f"now() - interval '{i + 2} hours', now() - interval '{i + 1} hours', "
                            f"{1000 * (i + 1)})")
        harness.psql(self.url, "insert into execution_time_statistics (run_id, project_id, "
                               "workflow_id, status, started_at, finished_at, execution_time_ms) "
                               "values " + ", ".join(rows))


class StatisticsAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = Tenancy()
        cls.daemon = harness.Daemon(env=daemon_env(cls.db.url)).start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()
        cls.db.drop()

    def get(self, query="", token=None, authorization=None):
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        if authorization is not None:
            headers["Authorization"] = authorization
        url = self.daemon.api + STATISTICS + ("?" + query if query else "")
        return harness.request("GET", url, headers=headers)

    def assert_401(self, response, what):
        self.assertEqual(response.status, 401, f"{what}: {response.body[:300]!r}")
        body = response.json()
        self.assertEqual(set(body), {"error", "message"}, what)
        self.assertIn("Bearer", response.headers.get("WWW-Authenticate", ""), what)

    def test_a_valid_token_reads_its_own_project(self):
        r = self.get("group_by=workflow", make_jwt(claims_for(PROJECT_A)))
        self.assertEqual(r.status, 200, r.body)
        groups = r.json()["groups"]
        self.assertEqual([g["workflow_id"] for g in groups], [WORKFLOW_A])
        self.assertEqual(groups[0]["count"], 2)

    def test_each_bad_token_answers_401(self):
        now = int(time.time())
        cases = {
            "no token": None,
            "empty bearer": "",
            "garbage": "not-a-jwt",
            "three garbage parts": "a.b.c",
            "bad signature": make_jwt(claims_for(PROJECT_A), secret="x" * 40),
            "expired": make_jwt(claims_for(PROJECT_A, exp=now - 3600)),
            "no exp": make_jwt(claims_for(PROJECT_A, exp=None)),
            "not yet valid": make_jwt(claims_for(PROJECT_A, nbf=now + 3600)),
            "wrong audience": make_jwt(claims_for(PROJECT_A, aud="anon")),
            "wrong issuer": make_jwt(claims_for(PROJECT_A, iss="https://evil.example")),
            "alg none": make_jwt(claims_for(PROJECT_A), header={"alg": "none"}).rsplit(".", 1)[0] + ".",
            "alg none signed": make_jwt(claims_for(PROJECT_A), header={"alg": "none"}),
            "alg confusion": make_jwt(claims_for(PROJECT_A), header={"alg": "RS256"}),
            "alg HS512": make_jwt(claims_for(PROJECT_A), header={"alg": "HS512"}),
            "ingest token": harness.INGEST_TOKEN,
            "overlong token": "a" * 9000,
            "bad project ids claim": make_jwt(claims_for("1' or '1'='1")),
        }
        for what, token in cases.items():
            with self.subTest(what):
                self.assert_401(self.get("", token), what)
        self.assert_401(self.get("", authorization="Basic dXNlcjpwYXNz"), "basic auth")
        self.assert_401(harness.request("GET", self.daemon.api + STATISTICS + "/histogram"),
                        "histogram without a token")

    def test_another_tenants_workflow_answers_as_one_that_does_not_exist(self):
        token = make_jwt(claims_for(PROJECT_A))
        theirs = self.get(f"workflow_id={WORKFLOW_B}&group_by=workflow", token)
        missing = self.get(f"workflow_id={WORKFLOW_NONE}&group_by=workflow", token)
        self.assertEqual(theirs.status, 200, theirs.body)
        self.assertEqual(theirs.status, missing.status)
        self.assertEqual(theirs.json()["groups"], [])
        self.assertEqual(comparable(theirs, WORKFLOW_B), comparable(missing, WORKFLOW_NONE))
        theirs = self.get(f"workflow_id={WORKFLOW_B}", token)
        missing = self.get(f"workflow_id={WORKFLOW_NONE}", token)
        self.assertEqual(comparable(theirs, WORKFLOW_B), comparable(missing, WORKFLOW_NONE))

    def test_a_token_whose_role_is_not_allowed_answers_403_forbidden_role(self):
        anon = make_jwt(claims_for(PROJECT_A, role="anon"))  # as Supabase's public anon key
        for r in (self.get("group_by=workflow", anon),
                  harness.request("GET", f"{self.daemon.api}/api/v1/tenants/{PROJECT_A}/metrics",
                                  headers={"Authorization": "Bearer " + anon})):
            self.assertEqual(r.status, 403, r.body[:300])
            body = r.json()
            self.assertEqual(set(body), {"error", "message"})
            self.assertEqual(body["error"], "forbidden_role")
        r = self.get("group_by=workflow", make_jwt(claims_for(PROJECT_A, role="service_role")))
        self.assertEqual(r.status, 403, r.body[:300])

    def test_a_token_without_a_role_claim_reads_as_authenticated(self):
        r = self.get("group_by=workflow", make_jwt(claims_for(PROJECT_A, role=None)))
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertEqual([g["count"] for g in r.json()["groups"]], [2])

    def test_a_token_without_projects_sees_nothing(self):
        r = self.get("group_by=workflow", make_jwt(claims_for(PROJECT_A, project_ids=[])))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["groups"], [])

    def test_hostile_and_overlong_parameters_answer_400(self):
        token = make_jwt(claims_for(PROJECT_A))
        before = self.db.count()
        hostile = ["x' or '1'='1", "1; drop table execution_time_statistics; --",
                   "$1", "') union select * from pg_roles --", "%00", "\u00e9" * 3, "A" * 5000]
        params = ["workflow_id", "start_date", "end_date", "tz", "status", "percentiles",
                  "group_by", "compare", "exact", "limit", "cursor", "unknown_parameter"]
        for name in params:
            for value in hostile:
                with self.subTest(parameter=name, value=value[:20]):
                    r = self.get(urllib.parse.urlencode({name: value}), token)
                    self.assertEqual(r.status, 400, r.body[:300])
                    self.assertIn("error", r.json())
        self.assertEqual(self.get("tz=Europe/Nowhere", token).status, 400)
        # Nothing ran: the table is as it was.
        self.assertEqual(self.db.count(), before)

    def test_a_user_jwt_cannot_ingest(self):
        # A project of its own, so the row it adds changes no other test's answer.
        event = harness.run_event(str(uuid.uuid4()), str(uuid.uuid4()), 10)
        r = self.daemon.post_runs([event], token=make_jwt(claims_for(PROJECT_A)))
        self.assertEqual(r.status, 401, r.body)
        before = self.db.count()
        self.assertEqual(self.daemon.post_runs([event]).status, 202)
        # Stored before the test ends, so no other test sees the write land under it.
        harness.wait_until(lambda: self.db.count() == before + 1, timeout=30)


    def test_tenant_metrics_show_that_tenant_only(self):
        # Named to run last in this class: its runs reach the database too.
        mine = harness.run_event(str(uuid.uuid4()), PROJECT_A, 1500)
        theirs = harness.run_event(str(uuid.uuid4()), PROJECT_B, 2500)
        self.assertEqual(self.daemon.post_runs([mine, theirs]).status, 202)
        everything = self.daemon.scrape().text
        self.assertIn(f'tenant="{PROJECT_B}"', everything)

        def metrics(project, token=None, authorization=None):
            headers = {"Authorization": authorization or "Bearer " + token}
            return harness.request("GET", f"{self.daemon.api}/api/v1/tenants/{project}/metrics",
                                   headers=headers)

        token = make_jwt(claims_for(PROJECT_A))
        r = metrics(PROJECT_A, token)
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain"))
        self.assertIn(f'tenant="{PROJECT_A}",workflow="{mine["workflow_id"]}"', r.text)
        self.assertIn("meshhook_workflow_run_duration_seconds_bucket{", r.text)
        self.assertNotIn(PROJECT_B, r.text)
        self.assertNotIn(theirs["workflow_id"], r.text)
        self.assertNotIn("meshhook_stats_build_info", r.text)  # the daemon's own series
        every_series = [l for l in r.text.splitlines() if l and not l.startswith("#")]
        self.assertTrue(all(f'tenant="{PROJECT_A}"' in l for l in every_series))
        # Upper-case ids are the same project.
        self.assertEqual(metrics(PROJECT_A.upper(), token).status, 200)
        # Another tenant's project answers exactly as one that does not exist.
        other = metrics(PROJECT_B, token)
        missing = metrics(str(uuid.uuid4()), token)
        self.assertEqual(other.status, 404, other.body)
        self.assertEqual((other.status, other.json()), (missing.status, missing.json()))
        # Without a user JWT: 401, the ingest token included.
        self.assert_401(metrics(PROJECT_A, authorization="Bearer " + harness.INGEST_TOKEN),
                        "ingest token")
        self.assert_401(metrics(PROJECT_A, token="not-a-jwt"), "garbage")
        self.assert_401(harness.request("GET", f"{self.daemon.api}/api/v1/tenants/{PROJECT_A}/metrics"),
                        "no token")
        bad = metrics("not-a-uuid", token)
        self.assertEqual(bad.status, 400, bad.body)
        self.assertIn("project_id", bad.json()["message"])
        self.assertEqual(harness.request("GET", f"{self.daemon.api}/api/v1/tenants/{PROJECT_A}",
                                         headers={"Authorization": "Bearer " + token}).status, 404)


class TransportTest(unittest.TestCase):
    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="meshhook-stats-tls.")
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.cleanup()
        subprocess.run(["rm", "-rf", self.workdir], check=False)

    def start(self, **env):
        d = harness.Daemon(env=env)
        self.daemons.append(d)
        return d

    def test_tls_with_a_certificate_made_now(self):
        cert = os.path.join(self.workdir, "cert.pem")
        key = os.path.join(self.workdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        bundle = os.path.join(self.workdir, "server.pem")
        with open(bundle, "w") as out:
            for part in (cert, key):
                with open(part) as f:
                    out.write(f.read())
        d = self.start(MESHHOOK_STATS_API_TLS_CERTIFICATE=bundle)
        d.start(wait=False)
        context = ssl.create_default_context(cafile=cert)

        def healthy():
            if d.proc.poll() is not None:
                raise AssertionError("daemon exited:\n" + d.read_log())
            with socket.create_connection(("127.0.0.1", d.api_port), timeout=2) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
                    return data
        data = harness.wait_until(healthy, timeout=30, what="HTTPS /healthz")
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        # Plain HTTP on the TLS port gets no answer.
        r = None
        try:
            r = harness.request("GET", d.api + "/healthz", timeout=5)
        except Exception:
            pass
        self.assertTrue(r is None or r.status != 200)

    def test_a_client_sending_headers_slowly_is_cut_off(self):
        d = self.start(MESHHOOK_STATS_API_REQUEST_TIMEOUT_MS="1000").start()
        started = time.monotonic()
        closed_after = None
        with socket.create_connection(("127.0.0.1", d.api_port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            try:
                for i in range(40):  # would take 10 s to finish the headers
                    time.sleep(0.25)
                    s.sendall(f"X-Slow-{i}: y\r\n".encode())
                s.settimeout(5)
                if s.recv(1) == b"":
                    closed_after = time.monotonic() - started
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                closed_after = time.monotonic() - started
        self.assertIsNotNone(closed_after, "the slow connection was never closed")
        self.assertLess(closed_after, 6.0)

    def test_oversized_headers_are_refused(self):
        d = self.start().start()
        r = None
        try:
            r = harness.request("GET", d.api + "/healthz", headers={"X-Big": "a" * 40000}, timeout=5)
        except Exception:
            pass  # the connection closed: refused
        self.assertTrue(r is None or r.status >= 400)
        self.assertEqual(harness.request("GET", d.api + "/healthz").status, 200)


if __name__ == "__main__":
    unittest.main()
