"""The daemon's HTTP surface, end to end: ingest errors, /metrics formats, health, shutdown."""

import json
import signal
import unittest
import uuid

from harness import BINARY, INGEST_TOKEN, Daemon, gunzip, request, run_event, sha256_hex

TENANT = str(uuid.uuid4())
WORKFLOW = str(uuid.uuid4())


class HttpApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(env={"MESHHOOK_STATS_INGEST_MAX_BODY_BYTES": "65536",
                                 "MESHHOOK_STATS_INGEST_MAX_BATCH": "100"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()

    def assertJsonError(self, r, status, error):
        self.assertEqual(r.status, status, r.text)
        body = r.json()
        self.assertEqual(body["error"], error)
        self.assertTrue(body["message"])
        return body

    def test_ingest_accepts_a_batch(self):
        events = [run_event(WORKFLOW, TENANT, 100 + i) for i in range(10)]
        r = self.daemon.post_runs(events)
        self.assertEqual(r.status, 202, r.text)
        self.assertEqual(r.json(), {"accepted": 10})
        text = self.daemon.scrape().text
        self.assertIn(f'meshhook_workflow_run_duration_seconds_count{{tenant="{TENANT}",'
                      f'workflow="{WORKFLOW}",status="succeeded"}}', text)

    def metric_value(self, text, series):
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.split(" ")[1])
        return None

    def test_a_reposted_run_is_counted_once(self):
        wf = str(uuid.uuid4())
        event = run_event(wf, TENANT, 250)
        before = self.metric_value(self.daemon.scrape().text, "meshhook_stats_duplicate_runs_total")
        self.assertIsNotNone(before)
        for _ in range(2):  # the producer's retry after a timeout
            r = self.daemon.post_runs([event])
            self.assertEqual(r.status, 202, r.text)
        text = self.daemon.scrape().text
        labels = f'tenant="{TENANT}",workflow="{wf}",status="succeeded"'
        self.assertEqual(
            self.metric_value(text, f"meshhook_workflow_run_duration_seconds_count{{{labels}}}"), 1)
        self.assertEqual(
            self.metric_value(text, f"meshhook_workflow_run_duration_seconds_sum{{{labels}}}"), 0.25)
        self.assertEqual(self.metric_value(text, f"meshhook_workflow_runs_total{{{labels}}}"), 1)
        self.assertEqual(
            self.metric_value(text, "meshhook_stats_duplicate_runs_total"), before + 1)

    def test_ingest_needs_the_token(self):
        self.assertJsonError(self.daemon.post_runs([run_event(WORKFLOW, TENANT, 1)], token=None),
                             401, "unauthorized")
        self.assertJsonError(self.daemon.post_runs([run_event(WORKFLOW, TENANT, 1)], token="x"),
                             401, "unauthorized")

    def test_ingest_names_every_bad_field_and_accepts_nothing(self):
        wf = str(uuid.uuid4())
        events = [run_event(wf, TENANT, 5), run_event(wf, "not-a-uuid", -1, status="odd")]
        body = self.assertJsonError(self.daemon.post_runs(events), 400, "invalid_run_event")
        fields = {(d["index"], d["field"]) for d in body["details"]}
        self.assertEqual(fields, {(1, "project_id"), (1, "status"), (1, "duration_ms")})
        self.assertNotIn(wf, self.daemon.scrape().text)

    def test_ingest_refuses_large_bodies_and_batches(self):
        big = [run_event(WORKFLOW, TENANT, 1, workflow_name="x" * 150) for _ in range(400)]
        self.assertJsonError(self.daemon.post_runs(big), 413, "payload_too_large")
        many = [run_event(WORKFLOW, TENANT, 1) for _ in range(101)]
        self.assertJsonError(self.daemon.post_runs(many), 413, "payload_too_large")

    def test_ingest_refuses_other_content_types(self):
        r = request("POST", self.daemon.api + "/api/v1/runs", "{}",
                    {"Authorization": "Bearer test-ingest-token", "Content-Type": "text/plain"})
        self.assertJsonError(r, 415, "unsupported_media_type")

    def test_unknown_paths_answer_json_404(self):
        self.assertJsonError(request("GET", self.daemon.api + "/nope"), 404, "not_found")

    def test_metrics_negotiates_openmetrics_and_text(self):
        om = self.daemon.scrape(accept="application/openmetrics-text;version=1.0.0,"
                                       "text/plain;version=0.0.4;q=0.5")
        self.assertTrue(om.headers["Content-Type"].startswith("application/openmetrics-text"))
        self.assertTrue(om.text.endswith("# EOF\n"))
        text = self.daemon.scrape(accept="text/plain")
        self.assertTrue(text.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        self.assertNotIn("# EOF", text.text)

    def test_metrics_gzip_when_asked(self):
        r = self.daemon.scrape(encoding="gzip")
        self.assertEqual(r.headers["Content-Encoding"], "gzip")
        self.assertIn(b"# TYPE meshhook_workflow_run_duration_seconds histogram", gunzip(r.body))

    def test_metrics_is_not_on_the_api_listener(self):
        self.assertEqual(request("GET", self.daemon.api + "/metrics").status, 404)

    def test_health_and_readiness(self):
        self.assertEqual(request("GET", self.daemon.api + "/healthz").json(), {"status": "ok"})
        r = request("GET", self.daemon.api + "/readyz")
        self.assertEqual(r.status, 200)

    def test_requests_are_measured_by_route_and_code(self):
        request("GET", self.daemon.api + "/healthz")
        self.assertIn('meshhook_stats_http_request_duration_seconds_count{route="/healthz",code="200"}',
                      self.daemon.scrape().text)


class TenantTokens(unittest.TestCase):
    """An ingest token limited to one project, beside the unlimited one, in the real daemon."""

    OTHER_TENANT = "bbbbbbbb-0000-4000-8000-00000000000b"
    TENANT_TOKEN = "tenant-only-token"

    @classmethod
    def setUpClass(cls):
        tenant_hash = sha256_hex(cls.TENANT_TOKEN)
        cls.daemon = Daemon(env={
            "MESHHOOK_STATS_INGEST_TOKEN_SHA256": f"{sha256_hex(INGEST_TOKEN)},{tenant_hash}",
            "MESHHOOK_STATS_INGEST_TOKEN_PROJECTS": f"{tenant_hash}:{TENANT}"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()

    def test_a_tenant_token_writes_its_project_and_nothing_of_a_batch_with_another(self):
        mine = run_event(WORKFLOW, TENANT, 70)
        r = self.daemon.post_runs([mine], token=self.TENANT_TOKEN)
        self.assertEqual(r.status, 202, r.text)

        theirs = run_event(WORKFLOW, self.OTHER_TENANT, 80)
        also_mine = run_event(WORKFLOW, TENANT, 90)
        r = self.daemon.post_runs([also_mine, theirs], token=self.TENANT_TOKEN)
        self.assertEqual(r.status, 403, r.text)
        body = r.json()
        self.assertEqual(body["error"], "forbidden_project")
        self.assertIn("event 1", body["message"])
        self.assertEqual([d["index"] for d in body["details"]], [1])
        text = self.daemon.scrape().text
        self.assertNotIn(f'tenant="{self.OTHER_TENANT}"', text)
        self.assertIn('meshhook_stats_ingest_requests_total{outcome="forbidden_project"} 1', text)
        # Nothing of the refused batch was observed: only the first run counts.
        self.assertIn(f'meshhook_workflow_runs_total{{tenant="{TENANT}",workflow="{WORKFLOW}",'
                      f'status="succeeded"}} 1', text)

        # The unlimited token still writes any project.
        r = self.daemon.post_runs([theirs])
        self.assertEqual(r.status, 202, r.text)


class Lifecycle(unittest.TestCase):
    def test_sigterm_exits_zero_and_logs_what_happened(self):
        d = Daemon().start()
        try:
            self.assertEqual(d.stop(signal.SIGTERM), 0)
            log = d.read_log()
            self.assertIn("starting with config", log)
            self.assertIn(f"127.0.0.1:{d.api_port}", log)
            self.assertIn("received SIGTERM", log)
        finally:
            d.cleanup()

    def test_json_logs_are_one_object_per_line(self):
        d = Daemon(env={"MESHHOOK_STATS_LOG_FORMAT": "json"}).start()
        try:
            d.stop()
            lines = [l for l in d.read_log().splitlines() if l.strip()]
            self.assertTrue(lines)
            for line in lines:
                self.assertIn("msg", json.loads(line))
        finally:
            d.cleanup()

    def test_a_busy_port_is_a_clear_startup_error(self):
        a = Daemon().start()
        b = Daemon(env={"MESHHOOK_STATS_API_LISTEN": f"127.0.0.1:{a.api_port}"})
        try:
            b.start(wait=False)
            self.assertEqual(b.proc.wait(timeout=30), 1)
            self.assertIn(f"cannot listen on 127.0.0.1:{a.api_port}", b.read_log())
        finally:
            b.cleanup()
            a.cleanup()


if __name__ == "__main__":
    unittest.main()
