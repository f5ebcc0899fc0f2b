"""Queue waits and steps over HTTP, end to end: POST /api/v1/runs with queued_at and steps to
the real daemon -> one row per run in queue_time_statistics and one per step in
step_time_statistics (a repost changes nothing), the two histograms with run_id exemplars in
/metrics, and a bad step refused with nothing stored."""

import datetime
import re
import unittest
import uuid

import harness

OPENMETRICS = "application/openmetrics-text;version=1.0.0"
T0 = datetime.datetime(2026, 1, 31, 12, 0, 0, tzinfo=datetime.timezone.utc)


def at(ms):
    """T0 + ms milliseconds, as RFC 3339."""
    return (T0 + datetime.timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


def step(id_, start_ms, end_ms, status="succeeded", attempts=1, type_="http"):
    return {"id": id_, "type": type_, "started_at": at(start_ms), "finished_at": at(end_ms),
            "status": status, "attempts": attempts}


def run(project, workflow, queue_ms, steps, status="succeeded"):
    """A run started at T0 after waiting queue_ms, ending with its last step."""
    return {"run_id": str(uuid.uuid4()), "workflow_id": workflow, "project_id": project,
            "status": status, "queued_at": at(-queue_ms), "started_at": at(0),
            "finished_at": at(max(s_end for _, _, s_end in steps_times(steps))),
            "steps": steps}


def steps_times(steps):
    for s in steps:
        start = datetime.datetime.fromisoformat(s["started_at"].replace("Z", "+00:00"))
        end = datetime.datetime.fromisoformat(s["finished_at"].replace("Z", "+00:00"))
        yield s["id"], (start - T0) / datetime.timedelta(milliseconds=1), \
            (end - T0) / datetime.timedelta(milliseconds=1)


class RunDetails(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = harness.MigratedDatabase("run_details")
        cls.daemon = harness.Daemon(env={"MESHHOOK_STATS_DATABASE_URL": cls.db.url}).start()
        harness.wait_until(lambda: harness.request("GET", cls.daemon.api + "/readyz").status == 200,
                           what="the daemon to be ready")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()
        cls.db.drop()

    def sql(self, query):
        return harness.psql(self.db.url, query)

    def stored(self, run_id):
        return self.sql(f"select count(*) from execution_time_statistics "
                        f"where run_id = '{run_id}'") == "1"

    def drain(self, project):
        """Posts a marker run and waits until it is stored: the spool is written in order, so
        everything posted before it has been written too."""
        marker = harness.run_event(str(uuid.uuid4()), project, 1)
        self.assertEqual(self.daemon.post_runs([marker]).status, 202)
        harness.wait_until(lambda: self.stored(marker["run_id"]), what="the marker run stored")

    def rows(self, project):
        queue = self.sql("select run_id, status, jobs, queue_wait_ms, start_wait_ms, source, "
                         "queued_at = started_at - queue_wait_ms * interval '1 ms' "
                         f"from queue_time_statistics where project_id = '{project}' "
                         "order by run_id")
        steps = self.sql("select run_id, step_id, step_type, status, attempts, duration_ms, source "
                         f"from step_time_statistics where project_id = '{project}' "
                         "order by run_id, step_id")
        return queue.splitlines(), steps.splitlines()

    def test_posted_queue_waits_and_steps_are_stored_once_and_observed(self):
        project, workflow = str(uuid.uuid4()), str(uuid.uuid4())
        events = [
            run(project, workflow, 1500, [step("fetch-order", 0, 400),
                                          step("charge", 400, 2900, attempts=3)]),
            run(project, workflow, 250, [step("fetch-order", 0, 300),
                                         step("charge", 300, 5300, "failed", 5)], "failed"),
            run(project, workflow, 40, [step("fetch-order", 0, 120)]),
        ]
        r = self.daemon.post_runs(events)
        self.assertEqual(r.status, 202, r.text)
        self.drain(project)

        queue, steps = self.rows(project)
        by_run = {e["run_id"]: e for e in events}
        self.assertEqual(len(queue), 3)
        waits = {}
        for line in queue:
            run_id, status, jobs, wait, start_wait, source, consistent = line.split("|")
            waits[run_id] = int(wait)
            self.assertEqual(status, by_run[run_id]["status"])
            self.assertEqual((jobs, start_wait, source, consistent), ("1", wait, "ingest", "t"))
        self.assertEqual(sorted(waits.values()), [40, 250, 1500])
        self.assertEqual(len(steps), 5)
        charge_failed = [s for s in steps if "|charge|" in s and "|failed|" in s]
        self.assertEqual(len(charge_failed), 1)
        self.assertTrue(charge_failed[0].endswith("|charge|http|failed|5|5000|ingest"),
                        charge_failed[0])

        # The producer retries the whole request: nothing changes.
        r = self.daemon.post_runs(events)
        self.assertEqual(r.status, 202, r.text)
        self.drain(project)
        self.assertEqual(self.rows(project), (queue, steps))

        om = self.daemon.scrape(accept=OPENMETRICS).text
        labels = f'tenant="{project}",workflow="{workflow}"'
        self.assertIn(f"meshhook_workflow_run_queue_seconds_count{{{labels}}} 3\n", om)
        self.assertIn(f'meshhook_workflow_step_duration_seconds_count{{{labels},'
                      f'step="fetch-order",status="succeeded"}} 3\n', om)
        self.assertIn(f'meshhook_workflow_step_duration_seconds_count{{{labels},'
                      f'step="charge",status="failed"}} 1\n', om)
        ids = "|".join(by_run)
        for family in ("meshhook_workflow_run_queue_seconds",
                       "meshhook_workflow_step_duration_seconds"):
            exemplar = re.compile(rf'^{family}_bucket{{{re.escape(labels)}[^}}]*}} \d+ '
                                  rf'# {{run_id="({ids})"}} ', re.M)
            self.assertRegex(om, exemplar, f"{family} has no exemplar of a posted run")

    def test_a_bad_step_is_refused_and_nothing_is_stored(self):
        project, workflow = str(uuid.uuid4()), str(uuid.uuid4())
        good = run(project, workflow, 100, [step("a", 0, 10)])
        bad = run(project, workflow, 100, [step("a", 0, 10), step("b", 20, 10)])
        r = self.daemon.post_runs([good, bad])
        self.assertEqual(r.status, 400, r.text)
        body = r.json()
        self.assertEqual(body["error"], "invalid_run_event")
        self.assertEqual([(d["index"], d["field"]) for d in body["details"]],
                         [(1, "steps[1].finished_at")])
        self.assertIn("event 1: steps[1].finished_at must not be before started_at",
                      body["message"])
        self.drain(project)
        for table in ("execution_time_statistics", "queue_time_statistics",
                      "step_time_statistics"):
            self.assertEqual(self.sql(f"select count(*) from {table} where workflow_id = "
                                      f"'{workflow}'"), "0", table)
        self.assertNotIn(workflow, self.daemon.scrape().text)


if __name__ == "__main__":
    unittest.main()
