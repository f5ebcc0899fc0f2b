"""Test harness: starts the real meshhook-stats binary, a real Prometheus and (through
scripts/pg.sh, driven by scripts/test.sh) a real Postgres, all on loopback, and stops what it
started by PID. Standard library only."""

import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MESHHOOK_BUILD_DIR", os.path.join(ROOT, "build"))
BINARY = os.environ.get("MESHHOOK_BIN", os.path.join(BUILD, "app", "meshhook-stats"))
INGEST_TOKEN = "test-ingest-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


def wait_until(predicate, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # the thing may not be up yet
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode("utf-8")


def request(method, url, body=None, headers=None, timeout=30):
    data = body if isinstance(body, (bytes, type(None))) else body.encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def psql(url, sql):
    """Runs SQL with psql against url; returns its unaligned output."""
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


class MigratedDatabase:
    """A database of its own on the test Postgres of `make test` (MESHHOOK_TEST_DATABASE_URL),
    migrated by `meshhook-stats migrate`; drop() removes it. Raises SkipTest without one."""

    def __init__(self, prefix):
        import unittest
        server = os.environ.get("MESHHOOK_TEST_DATABASE_URL")
        if not server:
            raise unittest.SkipTest("MESHHOOK_TEST_DATABASE_URL is not set (run through make test)")
        self.name = prefix + "_" + uuid.uuid4().hex[:12]
        parts = urllib.parse.urlsplit(server)
        self.admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
        self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.name))
        psql(self.admin, f"create database {self.name}")
        subprocess.run([BINARY, "migrate"], check=True, capture_output=True,
                       env={**os.environ, "MESHHOOK_STATS_DATABASE_URL": self.url})

    def count(self):
        """Rows in execution_time_statistics (as the owner: row level security does not apply)."""
        return int(psql(self.url, "select count(*) from execution_time_statistics"))

    def drop(self):
        psql(self.admin, f"drop database if exists {self.name} with (force)")


def run_event(workflow_id, project_id, duration_ms, status="succeeded", run_id=None, **extra):
    event = {
        "run_id": run_id or str(uuid.uuid4()),
        "workflow_id": workflow_id,
        "project_id": project_id,
        "status": status,
        "duration_ms": duration_ms,
    }
    event.update(extra)
    return event


class Daemon:
    """One meshhook-stats process with a private spool and free ports."""

    def __init__(self, env=None, config=None, workdir=None):
        self.workdir = workdir or tempfile.mkdtemp(prefix="meshhook-stats-daemon.")
        self.api_port = free_port()
        self.metrics_port = free_port()
        self.env = {
            "MESHHOOK_STATS_API_LISTEN": f"127.0.0.1:{self.api_port}",
            "MESHHOOK_STATS_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            "MESHHOOK_STATS_INGEST_TOKEN_SHA256": sha256_hex(INGEST_TOKEN),
            "MESHHOOK_STATS_SPOOL_DIR": os.path.join(self.workdir, "spool"),
            "MESHHOOK_STATS_LOG_LEVEL": "debug",
        }
        self.env.update(env or {})
        self.config = config
        self.proc = None
        self.log_path = os.path.join(self.workdir, "daemon.log")

    @property
    def api(self):
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def metrics_url(self):
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, wait=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHHOOK_STATS_")}
        env.update(self.env)
        args = [BINARY, "serve"]
        if self.config:
            args += ["--config", self.config]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.workdir)
        if wait:
            wait_until(self._healthy, timeout=30, what=f"meshhook-stats on {self.api}")
        return self

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"meshhook-stats exited with {self.proc.returncode}:\n"
                                 + self.read_log())
        return request("GET", self.api + "/healthz", timeout=2).status == 200

    def post_runs(self, events, token=INGEST_TOKEN):
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return request("POST", self.api + "/api/v1/runs", json.dumps(events), headers)

    def scrape(self, accept=None, encoding=None):
        headers = {}
        if accept:
            headers["Accept"] = accept
        if encoding:
            headers["Accept-Encoding"] = encoding
        return request("GET", self.metrics_url, headers=headers)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Prometheus:
    """A private Prometheus server scraping the given targets every second."""

    def __init__(self, targets, rule_files=()):
        self.workdir = tempfile.mkdtemp(prefix="meshhook-stats-prometheus.")
        self.port = free_port()
        self.targets = targets
        self.rule_files = list(rule_files)
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        config = os.path.join(self.workdir, "prometheus.yml")
        rules = "".join(f"  - {r}\n" for r in self.rule_files)
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n")
            if rules:
                f.write("rule_files:\n" + rules)
            f.write("scrape_configs:\n  - job_name: meshhook-stats\n    static_configs:\n")
            f.write("      - targets: [" + ", ".join(f"'{t}'" for t in self.targets) + "]\n")
        self.log = open(os.path.join(self.workdir, "prometheus.log"), "ab")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(self.workdir, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--enable-feature=exemplar-storage", "--web.enable-lifecycle"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir)
        wait_until(lambda: request("GET", self.url + "/-/ready", timeout=2).status == 200,
                   timeout=60, what="Prometheus ready")
        return self

    def api(self, path, **params):
        r = request("GET", self.url + path + "?" + urllib.parse.urlencode(params))
        body = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr):
        return self.api("/api/v1/query", query=expr)["result"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def gunzip(data):
    return gzip.decompress(data)
