"""queue-times and step-times through the real daemon with HS256 JWTs: tenant A never sees
tenant B's queue or step rows (row level security decides, and another tenant's workflow
answers as one that does not exist), the numbers are those of the rows, and bad parameters
answer 400 with {"error", "message"}. Rows are inserted with SQL. Needs
MESHHOOK_TEST_DATABASE_URL (set by `make test`)."""

import json
import unittest
import urllib.parse

import harness
from test_security import PROJECT_A, PROJECT_B, claims_for, daemon_env, make_jwt

QUEUE = "/api/v1/statistics/queue-times"
STEPS = "/api/v1/statistics/step-times"
WORKFLOW_A = "aaaaaaaa-0000-4000-8000-0000000000a1"
WORKFLOW_B = "bbbbbbbb-0000-4000-8000-0000000000b1"
WORKFLOW_NONE = "cccccccc-0000-4000-8000-0000000000c1"


class QueueAndSteps(harness.MigratedDatabase):
    """Queue and step rows of two projects, finished within the last hours (the default
    range is the last 7 days). A's waits are 100, 200, 300 ms (start waits 10, 20, 30); B's
    are 5000 ms, so any of B's rows in A's answer shows."""

    def __init__(self):
        super().__init__("queue_steps")
        queue = []
        steps = []
        for project, workflow, waits in ((PROJECT_A, WORKFLOW_A, (100, 200, 300)),
                                         (PROJECT_B, WORKFLOW_B, (5000, 5000))):
            for i, wait in enumerate(waits):
                finished = f"now() - interval '{i + 1} hours'"
                queue.append(f"(gen_random_uuid(), '{project}', '{workflow}', 'succeeded', "
                             f"{finished}, {finished} - interval '1 minute', "
                             f"{finished} - interval '30 seconds', 2, {wait}, {wait // 10})")
                for step, kind, ms, status, attempts in (("fetch", "http", 3 * wait, "succeeded", 1),
                                                         ("notify", "http", wait, "failed", 5)):
                    steps.append(f"(gen_random_uuid(), '{step}', '{kind}', '{project}', '{workflow}', "
                                 f"'{status}', {attempts}, {finished} - interval '1 second', "
                                 f"{finished}, {ms})")
        harness.psql(self.url, "insert into queue_time_statistics (run_id, project_id, workflow_id,"
                               " status, finished_at, queued_at, started_at, jobs, queue_wait_ms,"
                               " start_wait_ms) values " + ", ".join(queue))
        harness.psql(self.url, "insert into step_time_statistics (run_id, step_id, step_type,"
                               " project_id, workflow_id, status, attempts, started_at,"
                               " finished_at, duration_ms) values " + ", ".join(steps))


class QueueAndStepStatisticsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = QueueAndSteps()
        cls.daemon = harness.Daemon(env=daemon_env(cls.db.url)).start()
        cls.token_a = make_jwt(claims_for(PROJECT_A))
        cls.token_b = make_jwt(claims_for(PROJECT_B))

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()
        cls.db.drop()

    def get(self, path, query, token):
        url = self.daemon.api + path + ("?" + query if query else "")
        return harness.request("GET", url, headers={"Authorization": "Bearer " + token})

    def ok(self, path, query, token):
        r = self.get(path, query, token)
        self.assertEqual(r.status, 200, r.body[:300])
        return r.json()

    def test_each_tenant_sees_its_own_queue_waits_only(self):
        for mode in ("", "&exact=false"):
            with self.subTest(mode=mode):
                a = self.ok(QUEUE, "group_by=workflow" + mode, self.token_a)
                self.assertEqual([(g["workflow_id"], g["count"], g["max"]) for g in a["groups"]],
                                 [(WORKFLOW_A, 3, 300)])
                b = self.ok(QUEUE, "group_by=workflow" + mode, self.token_b)
                self.assertEqual([(g["workflow_id"], g["count"]) for g in b["groups"]],
                                 [(WORKFLOW_B, 2)])
        a = self.ok(QUEUE, "measure=start_wait", self.token_a)["groups"][0]
        self.assertEqual((a["count"], a["min"], a["median"], a["max"]), (3, 10, 20, 30))
        a = self.ok(QUEUE, "", self.token_a)["groups"][0]
        self.assertEqual((a["count"], a["median"], a["p95"]), (3, 200, 290))
        # Asking for B's workflow by id changes nothing.
        theirs = self.ok(QUEUE, f"workflow_id={WORKFLOW_B}", self.token_a)
        self.assertEqual(theirs["groups"][0]["count"], 0)
        h = self.ok(QUEUE + "/histogram", "", self.token_a)
        self.assertEqual(h["count"], 3)

    def test_each_tenant_sees_its_own_steps_only(self):
        a = self.ok(STEPS, f"workflow_id={WORKFLOW_A}", self.token_a)
        self.assertEqual(a["count"], 6)
        self.assertEqual([(s["step_id"], s["count"], s["median_ms"], s["failure_ratio"],
                           s["mean_attempts"], s["share"]) for s in a["steps"]],
                         [("fetch", 3, 600, 0, 1, 0.75), ("notify", 3, 200, 1, 5, 0.25)])
        b = self.ok(STEPS, f"workflow_id={WORKFLOW_B}", self.token_b)
        self.assertEqual([s["median_ms"] for s in b["steps"]], [15000, 5000])

    def test_another_tenants_workflow_answers_as_one_that_does_not_exist(self):
        for mode in ("", "&exact=false"):
            with self.subTest(mode=mode):
                theirs = self.get(STEPS, f"workflow_id={WORKFLOW_B}{mode}", self.token_a)
                missing = self.get(STEPS, f"workflow_id={WORKFLOW_NONE}{mode}", self.token_a)
                self.assertEqual(theirs.status, 200, theirs.body[:300])
                self.assertEqual(theirs.json()["steps"], [])

                def comparable(response, workflow):
                    body = json.loads(response.text.replace(workflow, "X"))
                    for key in ("start", "end"):
                        body["filters"].pop(key)
                    return response.status, body

                self.assertEqual(comparable(theirs, WORKFLOW_B), comparable(missing, WORKFLOW_NONE))

    def test_bad_parameters_answer_400_with_error_and_message(self):
        cases = [
            (QUEUE, "measure=run_time", "measure"),
            (QUEUE, "measure=", "measure"),
            (QUEUE, "status=running", "status"),
            (QUEUE, "workflow_id=x' or '1'='1", "workflow_id"),
            (STEPS, "", "workflow_id"),
            (STEPS, f"workflow_id={WORKFLOW_A},{WORKFLOW_B}", "workflow_id"),
            (STEPS, f"workflow_id={WORKFLOW_A}&status=timeout", "status"),
            (STEPS, f"workflow_id={WORKFLOW_A}&limit=10", "limit"),
            (STEPS, f"workflow_id={WORKFLOW_A}&tz=Europe/Nowhere", "tz"),
            (STEPS, f"workflow_id={WORKFLOW_A}&start_date=yesterday", "start_date"),
        ]
        for path, query, parameter in cases:
            with self.subTest(path=path, query=query):
                r = self.get(path, urllib.parse.quote(query, safe="=&,"), self.token_a)
                self.assertEqual(r.status, 400, r.body[:300])
                body = r.json()
                self.assertEqual(body["error"], "invalid_parameter")
                self.assertIsInstance(body["message"], str)
                self.assertIn(parameter, [d["parameter"] for d in body["details"]])

    def test_without_a_token_both_answer_401(self):
        for path in (QUEUE, STEPS + f"?workflow_id={WORKFLOW_A}"):
            r = harness.request("GET", self.daemon.api + path)
            self.assertEqual(r.status, 401, r.body[:300])
            self.assertEqual(set(r.json()), {"error", "message"})


if __name__ == "__main__":
    unittest.main()
