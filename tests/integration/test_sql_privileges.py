"""What a database login can do with the schema `meshhook-stats migrate` made, tried the way an
attacker would, on a real Postgres with logins of their own:

- a login holding only meshhook_stats_writer (or a MeshHook worker that may update
  workflow_runs) shadows our tables with temporary tables carrying a trigger, and tries to get
  our security definer functions to run that trigger as the table owner;
- a login holding meshhook_stats_reader sets request.jwt.claims to another tenant's project;
- a tenant role made by `meshhook-stats grant-tenant` sees its own tenant and no other.

Needs MESHHOOK_TEST_DATABASE_URL (set by `make test`)."""

import os
import subprocess
import time
import unittest
import urllib.parse
import uuid

import harness
from test_security import (PROJECT_A, PROJECT_B, WORKFLOW_A, WORKFLOW_B, STATISTICS, Tenancy,
                           claims_for, daemon_env, make_jwt)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def url_as(url, user):
    """url with another login (the test server trusts loopback logins)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def psql_result(url, sql):
    """(exit status, stdout, stderr) of psql running sql, without raising."""
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                         capture_output=True, text=True)
    return out.returncode, out.stdout.strip(), out.stderr.strip()


class Logins:
    """Login roles of this test run (roles belong to the cluster): dropped by drop()."""

    def __init__(self, admin_url):
        self.admin = admin_url
        self.names = []

    def create(self, prefix, *grants):
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        harness.psql(self.admin, f"create role {name} login nosuperuser nobypassrls")
        for g in grants:
            harness.psql(self.admin, f"grant {g} to {name}")
        self.names.append(name)
        return name

    def drop(self):
        for name in reversed(self.names):
            harness.psql(self.admin, f"drop role if exists {name}")


# A trigger function that records who it runs as, and temporary tables shadowing `tables`
# with it as a BEFORE INSERT trigger (returning null, so that the row goes nowhere).
TROJAN = """
create function pg_temp.trojan() returns trigger language plpgsql as $t$
begin
    insert into public.attack_log (who, superuser)
    select current_user, rolsuper from pg_roles where rolname = current_user;
    return null;
end
$t$;
"""

ROLLUP_COLUMNS = """(project_id uuid, workflow_id uuid, status text, bucket_start timestamptz,
    run_count bigint, sum_ms bigint, min_ms bigint, max_ms bigint, zero_count bigint,
    sketch int4[], primary key (workflow_id, bucket_start, status, project_id))"""

# The append-only deltas that an insert's statement trigger writes (migration 0008).
DELTA_COLUMNS = """(id bigint generated always as identity, project_id uuid, workflow_id uuid,
    status text, bucket_start timestamptz, run_count bigint, sum_ms numeric, min_ms bigint,
    max_ms bigint, zero_count bigint, sketch int4[], created_at timestamptz default now())"""

STATISTICS_COLUMNS = """(id bigint, run_id uuid primary key, project_id uuid, workflow_id uuid,
    status text, started_at timestamptz, finished_at timestamptz, execution_time_ms bigint,
    source text, recorded_at timestamptz)"""
CAPTURED_COLUMNS = """(run_id uuid, project_id uuid, workflow_id uuid, status text,
    started_at timestamptz, finished_at timestamptz)"""


def shadow(table, columns):
    return (f"create temporary table {table} {columns};\n"
            f"create trigger trojan before insert on pg_temp.{table}\n"
            f"    for each row execute function pg_temp.trojan();\n")


def prepare_attack_log(db_url):
    harness.psql(db_url, "create table public.attack_log (who text, superuser boolean); "
                         "grant insert on public.attack_log to public")


def attack_log(db_url):
    rows = harness.psql(db_url, "select who || ':' || superuser from public.attack_log")
    return [r for r in rows.splitlines() if r]


class PgTempShadowingTest(unittest.TestCase):
    """Issue: the rollup and capture triggers searched pg_temp first for tables."""

    def setUp(self):
        self.db = harness.MigratedDatabase("pgtemp")
        self.logins = Logins(self.db.admin)
        prepare_attack_log(self.db.url)

    def tearDown(self):
        self.db.drop()
        self.logins.drop()

    def test_a_writer_login_cannot_run_code_as_the_owner_through_the_rollup_trigger(self):
        attacker = self.logins.create("attacker", "meshhook_stats_writer")
        attack = (TROJAN + shadow("execution_time_rollups", ROLLUP_COLUMNS) +
                  shadow("execution_time_rollups_daily", ROLLUP_COLUMNS) +
                  shadow("execution_time_rollup_deltas", DELTA_COLUMNS) + f"""
            insert into public.execution_time_statistics
                (run_id, project_id, workflow_id, status, started_at, finished_at,
                 execution_time_ms)
            values (gen_random_uuid(), '{PROJECT_A}', '{WORKFLOW_A}', 'succeeded',
                    now() - interval '2 seconds', now() - interval '1 second', 1000)
            on conflict do nothing;""")
        status, _, err = psql_result(url_as(self.db.url, attacker), attack)
        self.assertEqual(status, 0, err)  # the insert itself is the writer's right
        self.assertEqual([w for w in attack_log(self.db.url) if w != f"{attacker}:false"], [],
                         "the attacker's trigger ran as another role")
        # The run reached the real rollups, not the attacker's temporary tables.
        self.assertEqual(harness.psql(self.db.url, "select sum(run_count) from "
                                                   "public.execution_time_rollups"), "1")
        self.assertEqual(harness.psql(self.db.url, "select sum(run_count) from "
                                                   "public.execution_time_rollups_daily"), "1")

    def test_every_security_definer_function_of_ours_ends_its_search_path_with_pg_temp(self):
        rows = harness.psql(self.db.url, """
            select p.proname || '=' || coalesce(array_to_string(p.proconfig, ';'), '')
            from pg_proc p
            where p.pronamespace = current_schema()::regnamespace and p.prosecdef""")
        functions = dict(r.split("=", 1) for r in rows.splitlines())
        self.assertIn("meshhook_stats_rollups_append", functions)  # the insert's trigger
        for name, config in functions.items():
            self.assertRegex(config, r"(^|;)search_path=[^;]*\bpg_temp$", name)


class CaptureShadowingTest(unittest.TestCase):
    """The same attack on MeshHook's capture trigger, by a login that may finish runs."""

    def setUp(self):
        server = os.environ.get("MESHHOOK_TEST_DATABASE_URL")
        if not server:
            raise unittest.SkipTest("MESHHOOK_TEST_DATABASE_URL is not set (run through make test)")
        # MeshHook's tables first, so that `migrate` installs the capture trigger.
        self.name = "capture_" + uuid.uuid4().hex[:12]
        parts = urllib.parse.urlsplit(server)
        self.admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
        self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.name))
        harness.psql(self.admin, f"create database {self.name}")
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.url, "-f",
                        os.path.join(ROOT, "tests", "fixtures", "meshhook_schema.sql")],
                       check=True, capture_output=True)
        subprocess.run([harness.BINARY, "migrate"], check=True, capture_output=True,
                       env={**os.environ, "MESHHOOK_STATS_DATABASE_URL": self.url})
        self.logins = Logins(self.admin)
        prepare_attack_log(self.url)

    def tearDown(self):
        harness.psql(self.admin, f"drop database if exists {self.name} with (force)")
        self.logins.drop()

    def test_a_worker_login_cannot_run_code_as_the_owner_through_the_capture_trigger(self):
        self.assertEqual(harness.psql(self.url, "select count(*) from pg_trigger where tgname = "
                                                "'meshhook_stats_capture_run'"), "1")
        run = harness.psql(self.url, f"""
            insert into projects (id, owner, name) values ('{PROJECT_A}', gen_random_uuid(), 'a');
            insert into workflow_definitions (id, project_id, slug, name)
                values ('{WORKFLOW_A}', '{PROJECT_A}', 'a', 'a');
            insert into workflow_runs (project_id, workflow_id, started_at)
                values ('{PROJECT_A}', '{WORKFLOW_A}', now() - interval '1 second')
                returning id""")
        worker = self.logins.create("worker")
        harness.psql(self.url, f"grant select, update on workflow_runs to {worker}")
        # The trigger appends to execution_time_captured_runs (the compactor moves the rows on
        # into execution_time_statistics): a temporary table of either name must not stand in.
        attack = (TROJAN + shadow("execution_time_captured_runs", CAPTURED_COLUMNS)
                  + shadow("execution_time_statistics", STATISTICS_COLUMNS) + f"""
            update public.workflow_runs set status = 'succeeded', finished_at = now()
            where id = '{run}';""")
        status, _, err = psql_result(url_as(self.url, worker), attack)
        self.assertEqual(status, 0, err)
        self.assertEqual([w for w in attack_log(self.url) if w != f"{worker}:false"], [],
                         "the worker's trigger ran as another role")
        self.assertEqual(harness.psql(self.url, "select count(*) from "
                                                f"public.execution_time_captured_runs "
                                                f"where run_id = '{run}'"), "1")
        harness.psql(self.url, "select meshhook_stats_compact(1000)")
        self.assertEqual(harness.psql(self.url, "select count(*) from "
                                                f"public.execution_time_statistics "
                                                f"where run_id = '{run}'"), "1")



class TenantReaderTest(unittest.TestCase):
    """Issue: any login in meshhook_stats_reader could claim another tenant's project."""

    @classmethod
    def setUpClass(cls):
        cls.db = Tenancy()
        cls.logins = Logins(cls.db.admin)
        cls.daemon = harness.Daemon(env=daemon_env(cls.db.url)).start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()
        cls.db.drop()
        cls.logins.drop()

    def cli(self, *args):
        return subprocess.run([harness.BINARY, *args], capture_output=True, text=True,
                              env={**os.environ, "MESHHOOK_STATS_DATABASE_URL": self.db.url})

    def count_as(self, login, sql="select count(*) from execution_time_statistics"):
        return psql_result(url_as(self.db.url, login), sql)

    def test_a_reader_login_setting_another_tenants_claims_sees_nothing(self):
        reader = self.logins.create("grafana", "meshhook_stats_reader")
        for claims in ('{"meshhook_project_ids": ["%s"]}' % PROJECT_B,
                       '{"sub": "%s"}' % PROJECT_B):
            status, out, err = self.count_as(reader, f"""
                set role meshhook_stats_reader;
                select set_config('request.jwt.claims', '{claims}', false);
                select count(*) from execution_time_statistics
                union all select count(*) from execution_time_rollups_daily""")
            self.assertEqual(status, 0, err)
            self.assertEqual(out.splitlines()[-2:], ["0", "0"], claims)

    def test_a_tenant_role_sees_exactly_its_tenant(self):
        role = f"tenant_{uuid.uuid4().hex[:8]}"
        self.logins.names.insert(0, role)  # dropped after the logins granted it
        r = self.cli("grant-tenant", "--project", PROJECT_A, "--role", role)
        self.assertEqual(r.returncode, 0, r.stderr)
        login = self.logins.create("grafana_a", role)
        status, out, err = self.count_as(login, f"""
            select set_config('request.jwt.claims', '{{"meshhook_project_ids": ["{PROJECT_B}"]}}', false);
            select project_id || ':' || count(*) from execution_time_statistics group by project_id""")
        self.assertEqual(status, 0, err)
        self.assertEqual(out.splitlines()[-1:], [f"{PROJECT_A}:2"])
        status, out, err = self.count_as(login, "select count(*) from execution_time_rollups "
                                                f"where project_id = '{PROJECT_B}'")
        self.assertEqual((status, out), (0, "0"), err)

        # The daemon still answers by the JWT, B for B.
        token = make_jwt(claims_for(PROJECT_B))
        got = harness.request("GET", self.daemon.api + STATISTICS + "?group_by=workflow",
                              headers={"Authorization": "Bearer " + token})
        self.assertEqual(got.status, 200, got.body[:300])
        self.assertEqual([(g["workflow_id"], g["count"]) for g in got.json()["groups"]],
                         [(WORKFLOW_B, 3)])

        r = self.cli("revoke-tenant", "--project", PROJECT_A, "--role", role)
        self.assertEqual(r.returncode, 0, r.stderr)
        status, _, err = self.count_as(login)
        self.assertNotEqual(status, 0, "revoked, the login still reads")
        self.assertIn("permission denied", err)
        r = self.cli("revoke-tenant", "--project", PROJECT_A, "--role", role)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no grant", r.stderr)

    def test_grant_tenant_refuses_bad_input_with_a_clear_error(self):
        r = self.cli("grant-tenant", "--project", "not-a-uuid", "--role", "tenant_x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--project", r.stderr)
        r = self.cli("grant-tenant", "--project", PROJECT_A, "--role", "Robert'); drop")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--role", r.stderr)
        r = self.cli("grant-tenant", "--project", PROJECT_A)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--role", r.stderr)
        r = self.cli("grant-tenant", "--project", PROJECT_A, "--role", "meshhook_stats_reader")
        self.assertEqual(r.returncode, 1)
        self.assertIn("own roles", r.stderr)
        self.assertEqual(harness.psql(self.db.url, "select count(*) from "
                                                   "meshhook_stats_tenant_roles"), "0")
        r = self.cli("grant-tenant", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("grant-tenant --project UUID --role NAME", r.stdout)

if __name__ == "__main__":
    unittest.main()
