"""A real Prometheus scrapes a real meshhook-stats fed with known runs."""

import os
import random
import subprocess
import time
import unittest
import uuid

from harness import Daemon, Prometheus, wait_until

TENANT = str(uuid.uuid4())
WORKFLOW = str(uuid.uuid4())


class PrometheusScrape(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon().start()
        cls.prom = Prometheus([f"127.0.0.1:{cls.daemon.metrics_port}"]).start()
        rng = random.Random(7)
        # 120 successful runs all between 0.3 s and 0.45 s: inside the (0.25, 0.5] bucket.
        cls.ok_runs = [str(uuid.uuid4()) for _ in range(120)]
        events = [{"run_id": r, "workflow_id": WORKFLOW, "project_id": TENANT,
                   "status": "succeeded", "duration_ms": rng.uniform(300, 450),
                   "workflow_name": "nightly export"} for r in cls.ok_runs]
        # 30 failed runs of 20 s to 25 s: inside (10, 30].
        events += [{"run_id": str(uuid.uuid4()), "workflow_id": WORKFLOW, "project_id": TENANT,
                    "status": "failed", "duration_ms": rng.uniform(20000, 25000)}
                   for _ in range(30)]
        for i in range(0, len(events), 50):
            r = cls.daemon.post_runs(events[i:i + 50])
            assert r.status == 202, r.text

    @classmethod
    def tearDownClass(cls):
        cls.prom.stop()
        cls.daemon.cleanup()

    def scalar(self, expr):
        result = self.prom.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr, want):
        return wait_until(lambda: self.scalar(expr) == want, timeout=60,
                          what=f"{expr} == {want}")

    def test_target_is_up(self):
        self.wait_for('up{job="meshhook-stats"}', 1.0)

    def test_runs_total_counts_every_posted_run(self):
        sel = f'tenant="{TENANT}",workflow="{WORKFLOW}"'
        self.wait_for(f'sum(meshhook_workflow_runs_total{{{sel},status="succeeded"}})', 120.0)
        self.wait_for(f'sum(meshhook_workflow_runs_total{{{sel},status="failed"}})', 30.0)
        self.wait_for(f'sum(meshhook_workflow_run_duration_seconds_count{{{sel}}})', 150.0)

    def test_quantiles_fall_within_the_buckets_the_durations_imply(self):
        sel = f'workflow="{WORKFLOW}",status="succeeded"'
        self.wait_for(f'sum(meshhook_workflow_run_duration_seconds_count{{{sel}}})', 120.0)
        for q in (0.5, 0.95, 0.99):
            v = self.scalar(f'histogram_quantile({q}, sum by (le) '
                            f'(meshhook_workflow_run_duration_seconds_bucket{{{sel}}}))')
            self.assertIsNotNone(v)
            self.assertGreaterEqual(v, 0.25)
            self.assertLessEqual(v, 0.5)
        failed = f'workflow="{WORKFLOW}",status="failed"'
        self.wait_for(f'sum(meshhook_workflow_run_duration_seconds_count{{{failed}}})', 30.0)
        v = self.scalar(f'histogram_quantile(0.5, sum by (le) '
                        f'(meshhook_workflow_run_duration_seconds_bucket{{{failed}}}))')
        self.assertGreaterEqual(v, 10)
        self.assertLessEqual(v, 30)
        # The sum is exact: the mean lies within the posted range.
        mean = self.scalar(f'sum(meshhook_workflow_run_duration_seconds_sum{{{sel}}}) / '
                           f'sum(meshhook_workflow_run_duration_seconds_count{{{sel}}})')
        self.assertGreaterEqual(mean, 0.3)
        self.assertLessEqual(mean, 0.45)

    def test_workflow_info_carries_the_name(self):
        self.wait_for(f'meshhook_workflow_info{{workflow="{WORKFLOW}",name="nightly export"}}', 1.0)

    def test_exemplars_point_at_posted_runs(self):
        sel = f'meshhook_workflow_run_duration_seconds_bucket{{workflow="{WORKFLOW}"}}'

        def exemplars():
            now = time.time()
            data = self.prom.api("/api/v1/query_exemplars", query=sel,
                                 start=str(now - 600), end=str(now + 60))
            return [e for series in data for e in series["exemplars"]]

        found = wait_until(exemplars, timeout=60, what="exemplars in Prometheus")
        run_ids = {e["labels"].get("run_id") for e in found}
        self.assertTrue(run_ids & set(self.ok_runs), run_ids)

    def test_self_metrics_are_scraped(self):
        self.wait_for('sum(meshhook_stats_ingest_runs_total{outcome="accepted"})', 150.0)
        self.wait_for('count(meshhook_stats_build_info)', 1.0)
        self.assertGreater(self.scalar('process_resident_memory_bytes{job="meshhook-stats"}'), 0)

    def test_promtool_accepts_the_live_exposition(self):
        body = self.daemon.scrape().body
        p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
