#!/usr/bin/env python3
"""Every PromQL query of the shipped dashboards, template variables substituted, is evaluated
by a real Prometheus (loaded with the shipped rules) that scraped a real meshhook-stats fed
with known runs, and returns the series those runs imply.

Needs the daemon binary (MESHHOOK_BIN), prometheus on PATH, and MESHHOOK_TEST_DATABASE_URL
(scripts/test.sh sets it) so that the spool, writer and database panels have data."""
import datetime
import math
import os
import subprocess
import sys
import time
import unittest
import urllib.parse
import uuid

import grafana_dashboards as gd

sys.path.insert(0, os.path.join(gd.ROOT, "tests", "integration"))
import harness  # noqa: E402  (the lead's harness: Daemon, Prometheus, wait_until)

SKIP = 77
DATABASE_URL = os.environ.get("MESHHOOK_TEST_DATABASE_URL", "")
SCHEMA = os.path.join(gd.ROOT, "sql", "schema.sql")

TENANT, TENANT_2 = str(uuid.uuid4()), str(uuid.uuid4())
W1, W2, W3 = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
W1_NAME = "nightly export"
# The series cap: 6 keeps one series free for each of the two fold steps and one for the last
# resort, so W1 succeeded, W1 failed and W2 succeeded get their own series and W3 is folded into
# {tenant=TENANT_2, workflow="__other__"}.
MAX_SERIES = 6
BUILTINS = {"__interval": "15s", "__interval_ms": "15000", "__rate_interval": "1m",
            "__range": "10m", "__range_s": "600"}


def psql(url, sql):
    res = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url], input=sql,
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise AssertionError(f"psql: {res.stderr}")


def rfc3339(t):
    return t.isoformat().replace("+00:00", "Z")


# Where the time goes: queue waits (ms) of W1 and W2, steps (id, ms) of W1; W3 has neither. The
# step family's cap of 6 leaves 2 series of its own (three fold steps keep one each, and one is
# the last resort's): W1 fetch and W1 charge succeeded; charge failed (in W1's failed runs) folds
# into {workflow=W1, step="__other__", status="failed"}.
QUEUE_MS = {W1: 2000, W2: 40}
STEPS_MS = {W1: (("fetch", 100), ("charge", 3000)), W2: ()}


def run(workflow, tenant, status, duration_ms, name=None):
    e = harness.run_event(workflow, tenant, duration_ms, status=status)
    if name:
        e["workflow_name"] = name
    if workflow in QUEUE_MS:
        # Explicit times, so that the wait does not depend on when the daemon receives it.
        now = datetime.datetime.now(datetime.timezone.utc)
        started = now - datetime.timedelta(milliseconds=duration_ms)
        del e["duration_ms"]
        e["started_at"], e["finished_at"] = rfc3339(started), rfc3339(now)
        e["queued_at"] = rfc3339(started - datetime.timedelta(milliseconds=QUEUE_MS[workflow]))
        steps, at = [], started
        for step, ms in STEPS_MS[workflow]:
            end = at + datetime.timedelta(milliseconds=ms)
            failed = status == "failed" and step == "charge"
            steps.append({"id": step, "type": "http", "started_at": rfc3339(at),
                          "finished_at": rfc3339(end), "status": "failed" if failed else "succeeded",
                          "attempts": 3 if failed else 1})
            at = end
        if steps:
            e["steps"] = steps
    return e


def values(series):
    return [float(s["value"][1]) for s in series]


class DashboardPromql(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = f"meshhook_dashboards_promql_{os.getpid()}"
        psql(DATABASE_URL, f"create database {cls.db}")
        parts = urllib.parse.urlsplit(DATABASE_URL)
        cls.db_url = urllib.parse.urlunsplit(parts._replace(path="/" + cls.db))
        with open(SCHEMA, encoding="utf-8") as f:
            psql(cls.db_url, f.read())
        cls.daemon = harness.Daemon(env={
            "MESHHOOK_STATS_DATABASE_URL": cls.db_url,
            "MESHHOOK_STATS_HISTOGRAMS_MAX_SERIES_PER_FAMILY": str(MAX_SERIES),
        }).start()
        cls.prom = harness.Prometheus([f"127.0.0.1:{cls.daemon.metrics_port}"],
                                      rule_files=[gd.RULES_FILE]).start()
        try:
            cls.feed()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def feed(cls):
        # Phase 1 creates every series, so that Prometheus sees the counters rise in phase 2
        # (a counter first scraped at its final value has no rate).
        first = [run(W1, TENANT, "succeeded", 400, W1_NAME), run(W1, TENANT, "failed", 22000, W1_NAME),
                 run(W2, TENANT_2, "succeeded", 1500, "hourly sync"), run(W3, TENANT_2, "succeeded", 70)]
        r = cls.daemon.post_runs(first)
        assert r.status == 202, r.text
        harness.wait_until(lambda: values(cls.prom.query('up{job="meshhook-stats"}')) == [1.0], timeout=60,
                           what=f"Prometheus to scrape {cls.daemon.metrics_url} (up == 1)")
        harness.wait_until(lambda: len(cls.prom.query("meshhook_workflow_runs_total")) >= 4, timeout=60,
                           what="the first runs scraped")
        time.sleep(3)  # a few scrapes at the phase-1 values
        # Phase 2: W1 119 more succeeded runs of 0.3-0.45 s and 29 failed of 20-25 s; W2 49 runs
        # of 1.5 s; W3 (folded) 19 runs of 70 ms.
        events = ([run(W1, TENANT, "succeeded", 300 + i, W1_NAME) for i in range(119)]
                  + [run(W1, TENANT, "failed", 20000 + 100 * i, W1_NAME) for i in range(29)]
                  + [run(W2, TENANT_2, "succeeded", 1500) for _ in range(49)]
                  + [run(W3, TENANT_2, "succeeded", 70) for _ in range(19)])
        for i in range(0, len(events), 50):
            r = cls.daemon.post_runs(events[i:i + 50])
            assert r.status == 202, r.text
            # Health checks while Prometheus watches, so every route has a rate.
            harness.request("GET", cls.daemon.api + "/healthz")
        # The recording rules have seen phase 2 once the failure ratio of W1 settles.
        harness.wait_until(
            lambda: any(abs(v - 29 / 148) < 0.01 for v in values(cls.prom.query(
                f'workflow:meshhook_workflow_run_failure_ratio:rate5m{{workflow="{W1}"}}'))),
            timeout=90, what="the recording rules to see the second phase")
        time.sleep(3)

    @classmethod
    def tearDownClass(cls):
        for stop in (lambda: cls.prom.stop(), lambda: cls.daemon.cleanup(),
                     lambda: psql(DATABASE_URL, f"drop database if exists {cls.db} with (force)")):
            try:
                stop()
            except Exception as e:  # keep stopping the rest
                print(f"teardown: {e}", file=sys.stderr)

    def evaluate(self, dashboard, expr, selection):
        values_ = {name: None for name in gd.variables(dashboard)}
        values_.update(selection)
        return self.prom.query(gd.expand_variables(expr, values_, BUILTINS, promql=True))

    def panels(self, uid):
        for path in gd.dashboard_paths():
            d = gd.load(path)
            if d["uid"] == uid:
                return d, {p["title"]: p for p in gd.all_panels(d) if p.get("type") != "row"}
        self.fail(f"no dashboard {uid}")

    def result(self, uid, title, ref="A", **selection):
        d, panels = self.panels(uid)
        target = next(t for t in panels[title]["targets"] if t["refId"] == ref)
        return self.evaluate(d, target["expr"], selection)

    # -- every query ------------------------------------------------------------------------

    def test_every_promql_query_returns_series(self):
        selections = ({}, {"tenant": [TENANT], "workflow": [W1], "instance": [f"127.0.0.1:{self.daemon.metrics_port}"]})
        for path in gd.dashboard_paths():
            d = gd.load(path)
            for p, t, kind in gd.queries(d):
                if kind != "promql":
                    continue
                for sel in selections:
                    with self.subTest(dashboard=d["uid"], panel=p["title"], ref=t["refId"], selection=sel):
                        result = self.evaluate(d, t["expr"], sel)
                        self.assertGreater(len(result), 0, "no series")
                        self.assertTrue(all(not math.isnan(v) for v in values(result)), result)

    def test_every_variable_query_finds_the_known_values(self):
        want = {"tenant": {TENANT, TENANT_2}, "workflow": {W1, W2, "__other__"},
                "instance": {f"127.0.0.1:{self.daemon.metrics_port}"}}
        for path in gd.dashboard_paths():
            d = gd.load(path)
            for var, selector, label in gd.variable_queries(d):
                with self.subTest(dashboard=d["uid"], variable=var["name"]):
                    self.assertIsNotNone(selector, "variables are label_values(selector, label)")
                    found = {s["metric"].get(label) for s in self.evaluate(d, selector, {})}
                    self.assertEqual(found, want[var["name"]])

    # -- workflow execution times -----------------------------------------------------------

    def by_workflow(self, series):
        return {s["metric"].get("workflow"): s for s in series}

    def test_percentile_panels_show_each_workflow_with_its_name(self):
        for q, lo, hi in (("p50", 0.25, 0.5), ("p95", 10, 30), ("p99", 10, 30)):
            with self.subTest(quantile=q):
                got = self.by_workflow(self.result("meshhook-execution-times", f"{q} run duration by workflow"))
                self.assertEqual(set(got), {W1, W2, "__other__"})
                self.assertEqual(got[W1]["metric"].get("name"), W1_NAME)
                self.assertNotIn("name", got["__other__"]["metric"], "folded series keep no name")
                v = float(got[W1]["value"][1])
                self.assertTrue(lo < v <= hi, f"{q} of W1 = {v}, expected in ({lo}, {hi}]")
                self.assertTrue(1 < float(got[W2]["value"][1]) <= 2.5)

    def test_selection_narrows_the_panels(self):
        got = self.by_workflow(self.result("meshhook-execution-times", "p95 run duration by workflow",
                                           tenant=[TENANT_2]))
        self.assertEqual(set(got), {W2, "__other__"})

    def test_failure_ratio_counts_failed_runs(self):
        got = self.by_workflow(self.result("meshhook-execution-times", "Failure ratio by workflow"))
        self.assertAlmostEqual(float(got[W1]["value"][1]), 29 / 148, delta=0.01)
        self.assertEqual(float(got[W2]["value"][1]), 0)
        overall = values(self.result("meshhook-execution-times", "Failure ratio"))
        self.assertAlmostEqual(overall[0], 29 / (148 + 49 + 19), delta=0.01)

    def test_runs_by_status(self):
        got = {s["metric"]["status"] for s in self.result("meshhook-execution-times", "Runs per second by status")}
        self.assertEqual(got, {"succeeded", "failed"})

    def test_heatmap_has_every_bucket(self):
        les = {s["metric"]["le"] for s in self.result("meshhook-execution-times", "Run duration distribution")}
        self.assertEqual(len(les), 17, les)
        self.assertIn("+Inf", les)

    def test_slowest_workflows_table_has_a_row_per_workflow_in_every_column(self):
        for ref in "ABCDE":
            with self.subTest(column=ref):
                got = self.by_workflow(self.result("meshhook-execution-times",
                                                   "Slowest workflows (p95, last 5 minutes)", ref=ref))
                self.assertEqual(set(got), {W1, W2, "__other__"})

    def test_runs_in_range_counts_every_run(self):
        total = values(self.result("meshhook-execution-times", "Runs in range"))[0]
        self.assertGreater(total, 0)

    # -- queue wait and steps ----------------------------------------------------------------

    def test_queue_wait_panels_show_each_workflow_with_its_wait(self):
        for q in ("p50", "p95"):
            with self.subTest(quantile=q):
                got = self.by_workflow(self.result("meshhook-execution-times", f"{q} queue wait by workflow"))
                self.assertEqual(set(got), {W1, W2})  # W3's runs carry no queue wait
                self.assertEqual(got[W1]["metric"].get("name"), W1_NAME)
                self.assertTrue(1 < float(got[W1]["value"][1]) <= 2.5, got[W1])
                self.assertTrue(0.025 < float(got[W2]["value"][1]) <= 0.05, got[W2])

    def test_top_slow_steps_lead_with_the_slowest_step(self):
        title = "Top slow steps (p95, last 5 minutes)"
        p95 = {(s["metric"]["workflow"], s["metric"]["step"]): float(s["value"][1])
               for s in self.result("meshhook-execution-times", title, ref="A")}
        self.assertEqual(set(p95), {(W1, "fetch"), (W1, "charge"), (W1, "__other__")})
        self.assertTrue(2.5 < p95[(W1, "charge")] <= 5, p95)
        self.assertTrue(0.05 < p95[(W1, "fetch")] <= 0.1, p95)
        self.assertGreater(p95[(W1, "charge")], p95[(W1, "fetch")])
        rate = {(s["metric"]["workflow"], s["metric"]["step"]): float(s["value"][1])
                for s in self.result("meshhook-execution-times", title, ref="B")}
        self.assertAlmostEqual(rate[(W1, "charge")] / rate[(W1, "fetch")], 119 / 148, delta=0.01)
        failed = {(s["metric"]["workflow"], s["metric"]["step"]): float(s["value"][1])
                  for s in self.result("meshhook-execution-times", title, ref="C")}
        self.assertEqual(failed[(W1, "fetch")], 0)
        self.assertEqual(failed[(W1, "charge")], 0)
        self.assertEqual(failed[(W1, "__other__")], 1)  # the folded failed charges

    # -- service -----------------------------------------------------------------------------

    def test_service_panels(self):
        uid = "meshhook-stats-service"
        self.assertEqual(values(self.result(uid, "Up")), [1.0])
        self.assertIn("accepted", {s["metric"]["outcome"] for s in self.result(uid, "Ingest requests by outcome")})
        self.assertIn("accepted", {s["metric"]["outcome"] for s in self.result(uid, "Ingested runs by outcome")})
        folded = {s["metric"]["family"] for s in self.result(uid, "Series folded by family")}
        self.assertIn("meshhook_workflow_run_duration_seconds", folded)
        self.assertEqual(values(self.result(uid, "Database")), [1.0])
        self.assertIn("ok", {s["metric"]["result"] for s in self.result(uid, "Write batches and rows")})
        self.assertIn("/api/v1/runs", {s["metric"]["route"] for s in self.result(uid, "API latency p99 by route")})


if __name__ == "__main__":
    if not DATABASE_URL:
        print("SKIP: MESHHOOK_TEST_DATABASE_URL is not set (scripts/test.sh starts a Postgres and sets it)")
        sys.exit(SKIP)
    if not os.path.exists(harness.BINARY):
        print(f"SKIP: the meshhook-stats binary {harness.BINARY} is not built")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
