"""Reads the shipped Grafana dashboards and expands their queries the way Grafana would.

Shared by check_dashboards.py (static checks), test_dashboard_sql.py (SQL panels against
Postgres) and the PromQL evaluation against a real Prometheus.
"""
import datetime
import glob
import json
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DASHBOARD_DIR = os.path.join(ROOT, "dashboards", "grafana")
RULES_FILE = os.path.join(ROOT, "dashboards", "prometheus", "meshhook-stats.rules.yml")

PROMETHEUS_TYPE = "prometheus"
POSTGRES_TYPES = ("grafana-postgresql-datasource", "postgres")

# Grafana's SQL macros this project's panels may use (and test_dashboard_sql.py expands).
SQL_MACROS = {"__timeFilter", "__timeFrom", "__timeTo", "__timeGroup", "__timeGroupAlias"}
# Grafana's built-in variables the panels may use.
BUILTIN_VARIABLES = {"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__all"}

VARIABLE_RE = re.compile(r"\$(?:\{(\w+)(?::(\w+))?\}|(\w+)\b(?!\())")
MACRO_RE = re.compile(r"\$(__\w+)\(")


def dashboard_paths():
    return sorted(glob.glob(os.path.join(DASHBOARD_DIR, "*.json")))


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def all_panels(dashboard):
    """Every panel, rows included, with the panels of collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        for inner in panel.get("panels", []) or []:
            yield inner


def variables(dashboard):
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def datasource_variable(reference, dashboard):
    """The datasource variable a {"uid": "${name}"} reference names, or None."""
    if not isinstance(reference, dict):
        return None
    m = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", str(reference.get("uid", "")))
    if not m:
        return None
    var = variables(dashboard).get(m.group(1) or m.group(2))
    return var if var and var.get("type") == "datasource" else None


def queries(dashboard):
    """(panel, target, kind) for every query target; kind is "promql" or "sql"."""
    for panel in all_panels(dashboard):
        if panel.get("type") == "row":
            continue
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel.get("datasource") or {}
            if ds.get("type") == PROMETHEUS_TYPE:
                yield panel, target, "promql"
            elif ds.get("type") in POSTGRES_TYPES:
                yield panel, target, "sql"
            else:
                yield panel, target, "unknown"


def variable_queries(dashboard):
    """(variable, PromQL selector) for label_values(<selector>, label) query variables."""
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q or "", re.S)
        if m:
            yield var, m.group(1), m.group(2)
        else:
            yield var, None, None


def regex_escape(value):
    return re.sub(r"([\\^$*+?.()|\[\]{}/])", r"\\\1", value)


def format_value(values, fmt, all_value=".*"):
    """A variable's values as Grafana formats them (regex by default for Prometheus)."""
    if values is None:  # "All"
        return all_value
    if fmt in (None, "regex"):
        escaped = [regex_escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if fmt == "csv":
        return ",".join(values)
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    raise ValueError(f"unsupported variable format :{fmt}")


def expand_variables(text, values, builtins, promql=False):
    """values: {name: list of values, or None for All}; builtins: {"__interval": "1m", ...}.
    promql: the text is PromQL, where Grafana's Prometheus data source doubles each backslash
    of a regex-formatted value so that it survives the string literal ("127\\.0")."""
    def sub(m):
        name = m.group(1) or m.group(3)
        fmt = m.group(2)
        if name in builtins:
            return builtins[name]
        if name not in values:
            raise KeyError(f"unknown variable ${name}")
        value = format_value(values[name], fmt)
        return value.replace("\\", "\\\\") if promql else value
    return VARIABLE_RE.sub(sub, text)


def duration_seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text.strip())
    if not m:
        raise ValueError(f"bad interval {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def _macro_calls(sql):
    """Yields (start, end, name, args) for each $__macro(...) call, innermost parentheses aware."""
    for m in MACRO_RE.finditer(sql):
        depth, i = 1, m.end()
        while depth and i < len(sql):
            depth += {"(": 1, ")": -1}.get(sql[i], 0)
            i += 1
        args = [a.strip() for a in sql[m.end():i - 1].split(",")] if sql[m.end():i - 1].strip() else []
        yield m.start(), i, m.group(1), args


def sql_macros(sql):
    return {name for _, _, name, _ in _macro_calls(sql)}


def expand_sql(sql, time_from, time_to, values, interval="1m"):
    """Grafana's Postgres expansion: template variables first, then the time macros."""
    def ts(t):
        return "'" + t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") + "'"
    builtins = {"__interval": interval, "__interval_ms": str(int(duration_seconds(interval) * 1000))}
    sql = expand_variables(sql, values, builtins)
    out, last = [], 0
    for start, end, name, args in _macro_calls(sql):
        if name == "__timeFilter":
            text = f"{args[0]} BETWEEN {ts(time_from)} AND {ts(time_to)}"
        elif name == "__timeFrom":
            text = ts(time_from)
        elif name == "__timeTo":
            text = ts(time_to)
        elif name in ("__timeGroup", "__timeGroupAlias"):
            step = duration_seconds(args[1])
            text = f"floor(extract(epoch from {args[0]})/{step:g})*{step:g}"
            if name == "__timeGroupAlias":
                text += ' AS "time"'
        else:
            raise KeyError(f"unknown SQL macro ${name}")
        out.append(sql[last:start] + text)
        last = end
    out.append(sql[last:])
    return "".join(out)
