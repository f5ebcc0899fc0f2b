"""Real responses validate against docs/openapi.yaml: the statistics API's (written by the
db test binary's hidden [.openapi-samples] case against the test Postgres) and the daemon's
ingest, health and metrics responses."""

import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402
from openapi_schema import Validator, load_spec  # noqa: E402

STATS = "/api/v1/statistics/execution-times"
QUEUE = "/api/v1/statistics/queue-times"
STEPS = "/api/v1/statistics/step-times"


def route_of(sample):
    """The route a sample file (tests/db [.openapi-samples]) was answered by, from its name."""
    if sample.startswith("queue_histogram"):
        return QUEUE + "/histogram"
    if sample.startswith("queue_"):
        return QUEUE
    if sample.startswith("steps_"):
        return STEPS
    return STATS + "/histogram" if sample.startswith("histogram") else STATS


class SchemaSelfTest(unittest.TestCase):
    def test_validator_rejects_what_the_schema_forbids(self):
        v = Validator(load_spec())
        schema = {"$ref": "#/components/schemas/StatisticsGroup"}
        self.assertTrue(v.errors({"count": 1}, schema))
        self.assertTrue(v.errors({"error": "x"}, {"$ref": "#/components/schemas/Error"}))
        self.assertFalse(v.errors({"error": "x", "message": "y"}, {"$ref": "#/components/schemas/Error"}))


@unittest.skipUnless(os.environ.get("MESHHOOK_TEST_DATABASE_URL"), "needs make test's Postgres")
class StatisticsResponses(unittest.TestCase):
    def test_statistics_responses_match_the_schema(self):
        v = Validator(load_spec())
        binary = os.environ.get("MESHHOOK_DB_TESTS") or os.path.join(
            harness.BUILD, "tests", "db", "bridge_db_tests")
        with tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, MESHHOOK_RESPONSE_DIR=out)
            run = subprocess.run([binary, "[.openapi-samples]"], env=env, capture_output=True,
                                 text=True, timeout=300)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            files = sorted(glob.glob(os.path.join(out, "*.json")))
            self.assertGreaterEqual(len(files), 18)
            names = [os.path.basename(f) for f in files]
            self.assertTrue(any(n.startswith("steps_") for n in names))
            self.assertTrue(any(n.startswith("queue_") for n in names))
            for path in files:
                name, status, _ = os.path.basename(path).rsplit(".", 2)
                route = route_of(name)
                with open(path, encoding="utf-8") as f:
                    body = json.load(f)
                with self.subTest(sample=name):
                    self.assertEqual(status, "400" if name.endswith("400") else "200")
                    self.assertEqual(v.check_response(route, "get", int(status), body), [])


class DaemonResponses(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Validator(load_spec())
        cls.daemon = harness.Daemon().start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()

    def check(self, path, method, response):
        body = response.json()
        self.assertEqual(self.v.check_response(path, method, response.status, body), [], body)

    def test_health_and_readiness(self):
        self.check("/healthz", "get", harness.request("GET", self.daemon.api + "/healthz"))
        self.check("/readyz", "get", harness.request("GET", self.daemon.api + "/readyz"))

    def test_ingest_answers(self):
        w, p = str(uuid.uuid4()), str(uuid.uuid4())
        self.check("/api/v1/runs", "post",
                   self.daemon.post_runs([harness.run_event(w, p, 120), harness.run_event(w, p, 80)]))
        self.check("/api/v1/runs", "post",
                   self.daemon.post_runs([harness.run_event(w, p, -1, status="running")]))
        self.check("/api/v1/runs", "post", self.daemon.post_runs([], token=None))
        r = harness.request("POST", self.daemon.api + "/api/v1/runs", "x",
                            {"Authorization": "Bearer " + harness.INGEST_TOKEN,
                             "Content-Type": "text/plain"})
        self.check("/api/v1/runs", "post", r)

    def test_metrics_is_text(self):
        r = self.daemon.scrape()
        self.assertEqual(r.status, 200)
        media = self.v.spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
        self.assertIn(r.headers["Content-Type"].replace(" ", ""),
                      [m.replace(" ", "") for m in media])


if __name__ == "__main__":
    unittest.main()
