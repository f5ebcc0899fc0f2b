"""The /ui page in a real Chromium against the real meshhook-stats: a migrated Postgres database
of its own, runs of two projects sent through the ingest API (the real write path), the daemon
verifying HS256 JWTs with a project_ids claim, queue waits and steps of the same runs inserted with
SQL, and dashboards/svelte/tests/e2e/ui.e2e.mjs checking that the page shows the numbers the API
returns (the summary's queue wait, a focused workflow's step breakdown included). Project B's runs must never reach the page of a
project A user. Needs MESHHOOK_TEST_DATABASE_URL (set by `make test`); skips without a browser."""

import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402
from test_security import claims_for, daemon_env, make_jwt  # noqa: E402

UI_DIR = os.path.join(ROOT, "dashboards", "svelte")
CHROMIUM = os.environ.get("MESHHOOK_CHROMIUM", "/usr/bin/chromium")
PROJECT_A = str(uuid.UUID(int=0xA11CE))
PROJECT_B = str(uuid.UUID(int=0xB0B))
SKIP = 77
NAMES = ["stripe-webhook-sync", "nightly export", "order fulfilment", "slack digest", "crm backfill"]


def iso(t):
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seeded_runs(project, workflows, runs, seed):
    """`runs` events over the last 30 days (most in the last week), log-normal durations, a
    different median per workflow, a few failures and timeouts."""
    rng = random.Random(seed)
    now = datetime.datetime.now(datetime.timezone.utc)
    events = []
    for i in range(runs):
        w = i % len(workflows)
        days = rng.uniform(0, 7) if rng.random() < 0.7 else rng.uniform(7, 30)
        finished = now - datetime.timedelta(days=days, minutes=5)
        ms = max(1, int(rng.lognormvariate(5 + w * 0.6, 0.5)))
        status = rng.choices(["succeeded", "failed", "timeout"], [90, 8, 2])[0]
        events.append(harness.run_event(
            workflows[w], project, None, status=status,
            started_at=iso(finished - datetime.timedelta(milliseconds=ms)),
            finished_at=iso(finished), workflow_name=NAMES[w]))
    for e in events:
        del e["duration_ms"]
    return events


# For every stored run: its queue wait (up to 5 s; the first job's wait a fifth of it) and three
# steps sharing its execution time. A failed run's fetch step failed after 5 attempts; one run in
# seven retried its notify step once.
QUEUE_AND_STEPS_SQL = """
insert into queue_time_statistics (run_id, project_id, workflow_id, status, finished_at, queued_at,
                                   started_at, jobs, queue_wait_ms, start_wait_ms)
select run_id, project_id, workflow_id, status, finished_at,
       started_at - w * interval '1 millisecond', started_at, 2, w, w / 5
from (select *, abs(hashtext(run_id::text)) % 5000 as w from execution_time_statistics) as r;
insert into step_time_statistics (run_id, step_id, step_type, project_id, workflow_id, status,
                                  attempts, started_at, finished_at, duration_ms)
select run_id, s.id, s.type, project_id, workflow_id,
       case when s.id = 'fetch' and r.status <> 'succeeded' then 'failed' else 'succeeded' end,
       case when s.id = 'fetch' and r.status <> 'succeeded' then 5
            when s.id = 'notify' and abs(hashtext(run_id::text)) % 7 = 0 then 2 else 1 end,
       finished_at - round(execution_time_ms * s.share) * interval '1 millisecond', finished_at,
       round(execution_time_ms * s.share)::bigint
from execution_time_statistics as r,
     (values ('receive', 'webhook', 0.05), ('fetch', 'http', 0.6), ('notify', 'http', 0.35))
       as s(id, type, share);
"""


class UiAgainstTheDaemonTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(UI_DIR, "dist", "index.html")):
            raise unittest.SkipTest("dashboards/svelte/dist is not built")
        cls.db = harness.MigratedDatabase("ui")
        cls.daemon = harness.Daemon(env=daemon_env(
            cls.db.url, MESHHOOK_STATS_UI_ENABLED="true",
            MESHHOOK_STATS_UI_DIR=os.path.join(UI_DIR, "dist"))).start()
        workflows_a = [str(uuid.uuid4()) for _ in range(5)]
        cls.workflows_b = [str(uuid.uuid4()) for _ in range(2)]
        events = (seeded_runs(PROJECT_A, workflows_a, 600, seed=7)
                  + seeded_runs(PROJECT_B, cls.workflows_b, 100, seed=11))
        for i in range(0, len(events), 100):
            r = cls.daemon.post_runs(events[i:i + 100])
            assert r.status == 202, r.body
        harness.wait_until(lambda: cls.db.count() == len(events), timeout=60,
                           what=f"{len(events)} runs stored")
        harness.psql(cls.db.url, QUEUE_AND_STEPS_SQL)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()
        cls.db.drop()

    def test_the_page_shows_what_the_api_returns(self):
        token = make_jwt(claims_for(PROJECT_A))
        shots = os.path.join(os.environ.get("MESHHOOK_BUILD_DIR", harness.tempfile.gettempdir()),
                             "tests", "browser", "screenshots-daemon")
        shutil.rmtree(shots, ignore_errors=True)
        env = {**os.environ, "MESHHOOK_UI_URL": self.daemon.api + "/ui/",
               "MESHHOOK_UI_TOKEN": token, "MESHHOOK_SCREENSHOT_DIR": shots,
               "MESHHOOK_CHROMIUM": CHROMIUM}
        run = subprocess.run(["node", "tests/e2e/ui.e2e.mjs"], cwd=UI_DIR, env=env,
                             capture_output=True, text=True, timeout=300)
        print(run.stdout)
        print(run.stderr, file=sys.stderr)
        if run.returncode == SKIP:
            self.skipTest("no browser at " + CHROMIUM)
        self.assertEqual(run.returncode, 0, "ui.e2e.mjs failed:\n" + run.stdout + run.stderr)
        self.assertNotIn("not ok", run.stdout)
        self.assertIn("ok 1 ", run.stdout)
        for scheme in ("light", "dark"):
            self.assertTrue(os.path.getsize(os.path.join(shots, f"ui-{scheme}.png")) > 10000)

    def test_the_page_never_sees_the_other_project(self):
        token = make_jwt(claims_for(PROJECT_A))
        r = harness.request(
            "GET", self.daemon.api + "/api/v1/statistics/execution-times?group_by=workflow"
            "&start_date=" + iso(datetime.datetime.now(datetime.timezone.utc)
                                 - datetime.timedelta(days=31)),
            headers={"Authorization": "Bearer " + token})
        self.assertEqual(r.status, 200, r.body)
        body = json.loads(r.body)
        seen = {g["workflow_id"] for g in body["groups"]}
        self.assertEqual(len(seen), 5)
        self.assertFalse(seen & set(self.workflows_b))
        self.assertEqual(sum(g["count"] for g in body["groups"]), 600)
        # Queue waits and steps too: A's only.
        auth = {"Authorization": "Bearer " + token}
        start = "&start_date=" + iso(datetime.datetime.now(datetime.timezone.utc)
                                     - datetime.timedelta(days=31))
        queue = json.loads(harness.request(
            "GET", self.daemon.api + "/api/v1/statistics/queue-times?group_by=workflow" + start,
            headers=auth).body)
        self.assertEqual({g["workflow_id"] for g in queue["groups"]}, seen)
        self.assertEqual(sum(g["count"] for g in queue["groups"]), 600)
        for workflow in self.workflows_b:
            steps = json.loads(harness.request(
                "GET", self.daemon.api + f"/api/v1/statistics/step-times?workflow_id={workflow}"
                + start, headers=auth).body)
            self.assertEqual((steps["count"], steps["steps"]), (0, []))
        mine = json.loads(harness.request(
            "GET", self.daemon.api + f"/api/v1/statistics/step-times?workflow_id={min(seen)}"
            + start, headers=auth).body)
        self.assertEqual([s["step_id"] for s in mine["steps"]], ["fetch", "notify", "receive"])
        # Names come from the runs' workflow_name, through the writer, under the same tenancy.
        names = {g["workflow_id"]: g["workflow_name"] for g in body["groups"]}
        self.assertEqual(sorted(names.values()), sorted(NAMES))
        # The latest reported name wins.
        renamed = min(names)
        event = harness.run_event(renamed, PROJECT_A, 10, workflow_name="invoice export")
        self.assertEqual(self.daemon.post_runs([event]).status, 202)

        def name_now():
            r = harness.request("GET", self.daemon.api + "/api/v1/statistics/execution-times"
                                f"?group_by=workflow&workflow_id={renamed}",
                                headers={"Authorization": "Bearer " + token})
            return json.loads(r.body)["groups"][0]["workflow_name"]
        harness.wait_until(lambda: name_now() == "invoice export", timeout=30, what="the new name")


if __name__ == "__main__":
    unittest.main()
