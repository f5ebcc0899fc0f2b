#!/usr/bin/env python3
"""Every SQL panel of the shipped dashboards, with Grafana's macros and variables expanded,
runs against the real schema (sql/schema.sql) in a throwaway database and returns the rows
the known runs imply. Needs MESHHOOK_TEST_DATABASE_URL (scripts/test.sh sets it)."""
import datetime
import os
import subprocess
import sys
import unittest
import urllib.parse
import uuid

import grafana_dashboards as gd

SKIP = 77  # CTest SKIP_RETURN_CODE
DATABASE_URL = os.environ.get("MESHHOOK_TEST_DATABASE_URL", "")
SCHEMA = os.path.join(gd.ROOT, "sql", "schema.sql")

TENANT_A, TENANT_B = str(uuid.UUID(int=0xA1)), str(uuid.UUID(int=0xB2))
WF_FAST, WF_SLOW, WF_OTHER = str(uuid.UUID(int=0xF1)), str(uuid.UUID(int=0xF2)), str(uuid.UUID(int=0xF3))
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
TIME_FROM, TIME_TO = NOW - datetime.timedelta(hours=6), NOW


def with_database(url, name):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def psql(url, sql, csv=True):
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]
    if csv:
        args.append("--csv")
    res = subprocess.run(args, input=sql, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise AssertionError(f"psql failed ({res.returncode}):\n{res.stderr}\n--- SQL ---\n{sql}")
    return res.stdout


def rows(url, sql):
    import csv
    import io
    return list(csv.DictReader(io.StringIO(psql(url, sql))))


def percentile_cont(values, q):
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


# Known runs, all finished within the dashboard's range, plus one outside it.
RUNS = (
    [(TENANT_A, WF_FAST, "succeeded", 10 * i, 30) for i in range(1, 101)]           # 10 ms .. 1 s
    + [(TENANT_A, WF_SLOW, "failed" if i % 4 == 0 else "succeeded", 60000 + 1000 * i, 90) for i in range(20)]
    + [(TENANT_B, WF_OTHER, "timeout", 5000, 120)]
)
OUTSIDE_RANGE = (TENANT_A, WF_FAST, "succeeded", 999999, 60 * 24 * 3)  # 3 days ago


class DashboardSql(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.admin_url = DATABASE_URL
        cls.db = f"meshhook_dashboards_{os.getpid()}"
        psql(cls.admin_url, f"create database {cls.db}", csv=False)
        cls.url = with_database(cls.admin_url, cls.db)
        with open(SCHEMA, encoding="utf-8") as f:
            psql(cls.url, f.read(), csv=False)
        values = []
        for tenant, wf, status, ms, minutes_ago in RUNS + [OUTSIDE_RANGE]:
            finished = NOW - datetime.timedelta(minutes=minutes_ago)
            started = finished - datetime.timedelta(milliseconds=ms)
            values.append(f"('{uuid.uuid4()}', '{tenant}', '{wf}', '{status}', "
                          f"'{started.isoformat()}', '{finished.isoformat()}', {ms})")
        psql(cls.url, "insert into execution_time_statistics "
                      "(run_id, project_id, workflow_id, status, started_at, finished_at, execution_time_ms) values\n"
                      + ",\n".join(values), csv=False)
        cls.panels = []
        for path in gd.dashboard_paths():
            d = gd.load(path)
            for p, t, kind in gd.queries(d):
                if kind == "sql":
                    cls.panels.append((os.path.basename(path), p, t))

    @classmethod
    def tearDownClass(cls):
        psql(cls.admin_url, f"drop database if exists {cls.db} with (force)", csv=False)

    def run_panel(self, panel, target, tenant=None, workflow=None, interval="5m"):
        sql = gd.expand_sql(target["rawSql"], TIME_FROM, TIME_TO,
                            {"tenant": tenant, "workflow": workflow, "prometheus": None, "postgres": None},
                            interval=interval)
        return rows(self.url, sql)

    def panel(self, title):
        for name, p, t in self.panels:
            if p["title"] == title:
                return p, t
        self.fail(f"no SQL panel titled {title!r}")

    def test_there_are_sql_panels(self):
        self.assertGreaterEqual(len(self.panels), 1)

    def test_every_sql_panel_returns_rows_for_all_and_for_one_workflow(self):
        for name, p, t in self.panels:
            for tenant, workflow in ((None, None), ([TENANT_A], [WF_FAST]), ([TENANT_A, TENANT_B], None)):
                with self.subTest(dashboard=name, panel=p["title"], tenant=tenant, workflow=workflow):
                    result = self.run_panel(p, t, tenant, workflow)
                    self.assertGreater(len(result), 0)

    def test_exact_percentiles_match_the_stored_runs(self):
        p, t = self.panel("Exact percentiles from stored runs")
        result = {r["workflow"]: r for r in self.run_panel(p, t)}
        self.assertEqual(set(result), {WF_FAST, WF_SLOW, WF_OTHER}, "the run outside the range is excluded")
        for wf in (WF_FAST, WF_SLOW):
            ms = [r[3] for r in RUNS if r[1] == wf]
            row = result[wf]
            with self.subTest(workflow=wf):
                self.assertEqual(int(row["runs"]), len(ms))
                self.assertEqual(row["tenant"], TENANT_A)
                self.assertAlmostEqual(float(row["min_s"]), min(ms) / 1000)
                self.assertAlmostEqual(float(row["max_s"]), max(ms) / 1000)
                self.assertAlmostEqual(float(row["avg_s"]), sum(ms) / len(ms) / 1000)
                for q in (0.50, 0.95, 0.99):
                    self.assertAlmostEqual(float(row[f"p{int(q * 100)}_s"]), percentile_cont(ms, q) / 1000)
        self.assertEqual(int(result[WF_SLOW]["failed"]), 5)
        self.assertEqual(int(result[WF_OTHER]["failed"]), 1, "timeout counts as a failure")
        self.assertEqual(list(result), [WF_SLOW, WF_OTHER, WF_FAST], "slowest p95 first")

    def test_exact_percentiles_filter_by_tenant_and_workflow(self):
        p, t = self.panel("Exact percentiles from stored runs")
        self.assertEqual([r["workflow"] for r in self.run_panel(p, t, [TENANT_B])], [WF_OTHER])
        self.assertEqual([r["workflow"] for r in self.run_panel(p, t, None, [WF_FAST])], [WF_FAST])
        self.assertEqual(self.run_panel(p, t, [TENANT_B], [WF_FAST]), [])

    def test_stored_runs_count_follows_the_time_range(self):
        p, t = self.panel("Stored runs in range")
        self.assertEqual(int(self.run_panel(p, t)[0]["runs"]), len(RUNS))
        self.assertEqual(int(self.run_panel(p, t, [TENANT_A], [WF_SLOW])[0]["runs"]), 20)

    def test_runs_per_interval_are_grouped_on_interval_boundaries(self):
        p, t = self.panel("Stored runs and exact p95 per interval")
        result = self.run_panel(p, t, interval="5m")
        self.assertEqual(sum(int(r["runs"]) for r in result), len(RUNS))
        for r in result:
            self.assertEqual(float(r["time"]) % 300, 0)
        self.assertEqual([float(r["time"]) for r in result], sorted(float(r["time"]) for r in result))


if __name__ == "__main__":
    if not DATABASE_URL:
        print("SKIP: MESHHOOK_TEST_DATABASE_URL is not set (scripts/test.sh starts a Postgres and sets it)")
        sys.exit(SKIP)
    if not os.path.exists(SCHEMA):
        print("SKIP: sql/schema.sql does not exist yet, so there is no schema to run the SQL panels against")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
