#!/usr/bin/env python3
"""Static checks of the shipped Grafana dashboards: what Grafana needs to import them, and
that every PromQL expression parses (promtool) and every SQL macro is one Grafana knows."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import grafana_dashboards as gd

PROMTOOL = os.environ.get("PROMTOOL", shutil.which("promtool") or "promtool")
RECORDED_NAME_RE = re.compile(r"\b[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]*[a-zA-Z0-9_]\b")
# Variables as Grafana would expand them when "All" is selected, and its built-ins.
ALL = None
BUILTINS = {"__interval": "1m", "__interval_ms": "60000", "__rate_interval": "1m", "__range": "6h",
            "__range_s": "21600"}


def recorded_rule_names():
    with open(gd.RULES_FILE, encoding="utf-8") as f:
        return set(re.findall(r"^\s*- record:\s*(\S+)\s*$", f.read(), re.M))


class DashboardCase(unittest.TestCase):
    def setUp(self):
        self.paths = gd.dashboard_paths()
        self.assertGreaterEqual(len(self.paths), 2, "expected the shipped dashboards")
        self.dashboards = {os.path.basename(p): gd.load(p) for p in self.paths}


class ModelTest(DashboardCase):
    def test_dashboards_have_what_grafana_needs_to_import_them(self):
        uids = set()
        for name, d in self.dashboards.items():
            with self.subTest(dashboard=name):
                for key in ("uid", "title", "schemaVersion", "panels", "templating", "time", "tags", "timepicker"):
                    self.assertIn(key, d)
                self.assertRegex(d["uid"], r"^[a-zA-Z0-9_-]{1,40}$", "a stable uid of at most 40 characters")
                self.assertNotIn(d["uid"], uids, "uids must be unique across dashboards")
                uids.add(d["uid"])
                self.assertGreaterEqual(d["schemaVersion"], 36)
                self.assertIsNone(d.get("id"), "id must be null so that import creates or replaces by uid")
                self.assertIn("meshhook-stats", d["tags"])
                self.assertIn("from", d["time"])
                self.assertIn("to", d["time"])
                self.assertNotIn("__inputs", d, "data sources are chosen by variables, not import inputs")

    def test_panel_ids_are_unique_and_panels_fit_the_grid(self):
        for name, d in self.dashboards.items():
            ids = [p.get("id") for p in gd.all_panels(d)]
            with self.subTest(dashboard=name):
                self.assertTrue(all(isinstance(i, int) for i in ids), f"every panel needs an integer id: {ids}")
                dupes = sorted({i for i in ids if ids.count(i) > 1})
                self.assertEqual(dupes, [], "duplicate panel ids")
                for p in gd.all_panels(d):
                    g = p.get("gridPos", {})
                    self.assertTrue(g.get("w", 0) >= 1 and g.get("h", 0) >= 1 and g.get("x", -1) >= 0
                                    and g["x"] + g["w"] <= 24 and g.get("y", -1) >= 0,
                                    f"panel {p['id']} gridPos {g}")
                    if p.get("type") != "row":
                        self.assertTrue(p.get("title"), f"panel {p['id']} has no title")
                        self.assertTrue(p.get("targets"), f"panel {p['id']} has no queries")

    def test_every_datasource_is_a_variable_reference(self):
        for name, d in self.dashboards.items():
            for p in gd.all_panels(d):
                if p.get("type") == "row":
                    continue
                with self.subTest(dashboard=name, panel=p["id"]):
                    var = gd.datasource_variable(p.get("datasource"), d)
                    self.assertIsNotNone(var, f"panel datasource {p.get('datasource')} is not ${{variable}}")
                    self.assertEqual(p["datasource"]["type"], var["query"],
                                     "the panel's datasource type matches its variable's plugin")
                    for t in p["targets"]:
                        self.assertEqual(t.get("datasource", p["datasource"]), p["datasource"],
                                         f"target {t.get('refId')} uses another datasource")
            for var in gd.variables(d).values():
                if var.get("type") == "query":
                    with self.subTest(dashboard=name, variable=var["name"]):
                        self.assertIsNotNone(gd.datasource_variable(var.get("datasource"), d))

    def test_variables_used_by_queries_exist(self):
        for name, d in self.dashboards.items():
            known = set(gd.variables(d)) | gd.BUILTIN_VARIABLES
            texts = [t.get("expr") or t.get("rawSql") or "" for _, t, _ in gd.queries(d)]
            texts += [sel or "" for _, sel, _ in gd.variable_queries(d)]
            texts += [p.get("title", "") for p in gd.all_panels(d)]
            for text in texts:
                for m in gd.VARIABLE_RE.finditer(text):
                    used = m.group(1) or m.group(3)
                    with self.subTest(dashboard=name, variable=used):
                        self.assertIn(used, known)

    def test_every_query_is_promql_or_sql(self):
        for name, d in self.dashboards.items():
            for p, t, kind in gd.queries(d):
                with self.subTest(dashboard=name, panel=p["id"], ref=t.get("refId")):
                    self.assertIn(kind, ("promql", "sql"))
                    if kind == "promql":
                        self.assertTrue(t.get("expr", "").strip())
                    else:
                        self.assertTrue(t.get("rawSql", "").strip())
                        self.assertTrue(t.get("rawQuery"))
                        self.assertIn(t.get("format"), ("table", "time_series"))

    def test_sql_panels_use_only_known_macros(self):
        for name, d in self.dashboards.items():
            for p, t, kind in gd.queries(d):
                if kind != "sql":
                    continue
                with self.subTest(dashboard=name, panel=p["id"]):
                    unknown = gd.sql_macros(t["rawSql"]) - gd.SQL_MACROS
                    self.assertEqual(unknown, set(), "unknown Grafana SQL macros")
                    sql = t["rawSql"]
                    self.assertTrue("$__timeFilter(" in sql or ("$__timeFrom()" in sql and "$__timeTo()" in sql),
                                    "SQL panels must follow the dashboard's time range")

    def test_recording_rules_used_by_dashboards_exist(self):
        recorded = recorded_rule_names()
        for name, d in self.dashboards.items():
            for p, t, kind in gd.queries(d):
                if kind != "promql":
                    continue
                for used in RECORDED_NAME_RE.findall(t["expr"]):
                    with self.subTest(dashboard=name, panel=p["id"], rule=used):
                        self.assertIn(used, recorded)

    def test_every_promql_expression_parses(self):
        exprs = []
        for name, d in self.dashboards.items():
            values = {v: ALL for v in gd.variables(d)}
            for p, t, kind in gd.queries(d):
                if kind == "promql":
                    exprs.append((f"{name} panel {p['id']} ({p['title']}) query {t['refId']}",
                                  gd.expand_variables(t["expr"], values, BUILTINS, promql=True)))
            for var, selector, _ in gd.variable_queries(d):
                if selector:
                    exprs.append((f"{name} variable {var['name']}", gd.expand_variables(selector, values, BUILTINS, promql=True)))
        self.assertTrue(exprs)
        # promtool parses each expression as a recording rule; one file, one rule per expression.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "dashboard-exprs.rules.yml")
            with open(path, "w", encoding="utf-8") as f:
                f.write("groups:\n  - name: dashboard-expressions\n    rules:\n")
                for i, (_, expr) in enumerate(exprs):
                    body = "\n".join("          " + line for line in expr.splitlines())
                    f.write(f"      - record: dashboard_expression_{i}\n        expr: |\n{body}\n")
            res = subprocess.run([PROMTOOL, "check", "rules", path], capture_output=True, text=True)
            if res.returncode != 0:
                failing = [f"  {where}: {expr}" for i, (where, expr) in enumerate(exprs)
                           if f"dashboard_expression_{i}\"" in res.stdout + res.stderr
                           or f"rule {i + 1}," in res.stdout + res.stderr]
                self.fail("promtool rejects dashboard PromQL:\n" + res.stdout + res.stderr + "\n".join(failing))


class RulesMetadataTest(unittest.TestCase):
    """Every alert carries what on-call needs, and its runbook_url points at a real section."""

    def alerts(self):
        with open(gd.RULES_FILE, encoding="utf-8") as f:
            text = f.read()
        blocks = re.split(r"^\s*- (?=alert:|record:)", text, flags=re.M)[1:]
        return {re.match(r"alert:\s*(\S+)", b).group(1): b for b in blocks if b.startswith("alert:")}

    def anchors(self):
        with open(os.path.join(gd.ROOT, "docs", "runbook.md"), encoding="utf-8") as f:
            headings = re.findall(r"^#{1,6}\s+(.*?)\s*$", f.read(), re.M)
        # GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes.
        return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}

    def test_the_required_alerts_exist(self):
        self.assertTrue({"MeshhookWorkflowRunSlow", "MeshhookWorkflowFailureRatioHigh",
                         "MeshhookStatsSpoolBacklogGrowing", "MeshhookStatsWritesFailing",
                         "MeshhookStatsDown", "MeshhookStatsSeriesDropped"} <= set(self.alerts()))

    def test_alerts_have_severity_summary_description_runbook_and_for(self):
        anchors = self.anchors()
        for name, block in self.alerts().items():
            with self.subTest(alert=name):
                self.assertRegex(name, r"^[A-Z][A-Za-z0-9]+$", "alert names are CamelCase")
                self.assertRegex(block, r"\n\s+for:\s*\d+[smh]")
                self.assertRegex(block, r"\n\s+severity:\s*(critical|warning|info)\b")
                self.assertRegex(block, r"\n\s+summary:")
                self.assertRegex(block, r"\n\s+description:")
                m = re.search(r"\n\s+runbook_url:\s*(\S+)", block)
                self.assertIsNotNone(m)
                self.assertRegex(m.group(1), r"docs/runbook\.md#")
                anchor = m.group(1).split("#", 1)[1]
                self.assertIn(anchor, anchors, "runbook_url anchor has no section in docs/runbook.md")

    def test_recording_rules_are_named_level_metric_operation(self):
        for name in recorded_rule_names():
            with self.subTest(rule=name):
                self.assertRegex(name, r"^[a-z_]+:meshhook_[a-z0-9_]+:[a-z0-9_]+$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
