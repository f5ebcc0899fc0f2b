"""The bounds on one statistics request, through the real daemon: the statistics.* settings
reach the API (a request past statistics.request_timeout_ms answers 504 timeout; more time
buckets than statistics.max_buckets answer 400 naming group_by). Needs
MESHHOOK_TEST_DATABASE_URL (set by `make test`)."""

import unittest

import harness
from test_security import PROJECT_A, STATISTICS, claims_for, daemon_env, make_jwt


class StatisticsLimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = harness.MigratedDatabase("limits")
        # 200,000 runs in January 2024: sorting them for percentile_cont takes far longer
        # than 1 ms.
        harness.psql(cls.db.url,
                     "insert into execution_time_statistics (run_id, project_id, workflow_id,"
                     " status, started_at, finished_at, execution_time_ms)"
                     f" select gen_random_uuid(), '{PROJECT_A}',"
                     " 'aaaaaaaa-0000-4000-8000-00000000000a', 'succeeded', f, f, 1 + i % 997"
                     " from (select i, timestamptz '2024-01-01T00:00:00Z'"
                     "   + i * interval '13 seconds' as f"
                     "   from generate_series(0, 199999) as i) as g")
        cls.hurried = harness.Daemon(env=daemon_env(
            cls.db.url, MESHHOOK_STATS_STATISTICS_REQUEST_TIMEOUT_MS="1",
            MESHHOOK_STATS_DATABASE_POOL_SIZE="1")).start()
        cls.strict = harness.Daemon(env=daemon_env(
            cls.db.url, MESHHOOK_STATS_STATISTICS_MAX_BUCKETS="100")).start()
        cls.token = make_jwt(claims_for(PROJECT_A))

    @classmethod
    def tearDownClass(cls):
        cls.hurried.cleanup()
        cls.strict.cleanup()
        cls.db.drop()

    def get(self, daemon, query):
        return harness.request("GET", daemon.api + STATISTICS + "?" + query,
                               headers={"Authorization": "Bearer " + self.token})

    def test_a_request_past_its_deadline_answers_504_timeout(self):
        for _ in range(2):  # the one pooled connection is reused, and fails the same way
            r = self.get(self.hurried, "start_date=2024-01-01&end_date=2024-02-01&exact=true")
            self.assertEqual(r.status, 504, r.body[:300])
            body = r.json()
            self.assertEqual(set(body), {"error", "message"})
            self.assertEqual(body["error"], "timeout")
            self.assertIn("statistics.request_timeout_ms", body["message"])
        # And the daemon stays ready (its writer connects on its own schedule after start).
        harness.wait_until(lambda: harness.request("GET", self.hurried.api + "/readyz").status
                           == 200, timeout=30, what="/readyz of the hurried daemon")

    def test_more_buckets_than_configured_answer_400_naming_the_limit(self):
        r = self.get(self.strict, "start_date=2024-01-01&end_date=2024-01-08&group_by=hour")
        self.assertEqual(r.status, 400, r.body[:300])
        body = r.json()
        self.assertEqual(body["error"], "invalid_parameter")
        self.assertEqual(body["details"][0]["parameter"], "group_by")
        self.assertIn("at most 100", body["details"][0]["reason"])
        ok = self.get(self.strict, "start_date=2024-01-01&end_date=2024-01-08&group_by=day")
        self.assertEqual(ok.status, 200, ok.body[:300])
        self.assertEqual(sum(g["count"] for g in ok.json()["groups"]),
                         int(harness.psql(self.db.url,
                                          "select count(*) from execution_time_statistics"
                                          " where finished_at < '2024-01-08'")))


if __name__ == "__main__":
    unittest.main()
