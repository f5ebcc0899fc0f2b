"""Whole-daemon fault tests of the storage path (issue: durable storage bridge).

Each test starts its own Postgres cluster (scripts/pg.sh) so it may stop it without
disturbing the other db tests, and its own meshhook-stats through the integration harness.
Every run acknowledged with 202 must end up in execution_time_statistics exactly once.
"""

import glob
import http.client
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

import harness

ROOT = harness.ROOT
PG = os.path.join(ROOT, "scripts", "pg.sh")
WORKFLOW = "22222222-2222-4222-8222-222222222222"
PROJECT = "11111111-1111-4111-8111-111111111111"
OUTAGE_SECONDS = float(os.environ.get("MESHHOOK_FAULT_OUTAGE_SECONDS", "30"))


def psql(port, sql, db="meshhook_stats"):
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db,
                          "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Cluster:
    """A private Postgres for one test, stopped and removed afterwards."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="meshhook-fault-pg.")
        os.chmod(self.dir, 0o755)
        self.datadir = os.path.join(self.dir, "pg")
        self.port = harness.free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/meshhook_stats"

    def start(self):
        subprocess.run([PG, "start", self.datadir, str(self.port)], check=True,
                       capture_output=True)

    def stop(self, mode="fast"):
        subprocess.run([PG, "stop", self.datadir], check=True, capture_output=True,
                       env={**os.environ, "PG_STOP_MODE": mode})

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def events(n):
    return [harness.run_event(WORKFLOW, PROJECT, 1000 + i, run_id=str(uuid.uuid4()))
            for i in range(n)]


class Load:
    """Posts batches of runs until stopped; remembers what was acknowledged and what failed."""

    def __init__(self, daemon, batch=50, pause=0.02):
        self.daemon, self.batch, self.pause = daemon, batch, pause
        self.acked, self.failures, self.unanswered = set(), [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            batch = events(self.batch)
            try:
                r = self.daemon.post_runs(batch)
            # The daemon died mid-request (a refused connection, a reset, a cut-off response):
            # nothing was acknowledged, and the batch may or may not be stored.
            except (OSError, http.client.HTTPException):
                self.unanswered += 1
                time.sleep(0.05)
                continue
            if r.status == 202:
                self.acked.update(e["run_id"] for e in batch)
            else:
                self.failures.append((r.status, r.body[:200]))
            time.sleep(self.pause)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()


class StorageFaultTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(harness.BINARY):
            self.fail(f"meshhook-stats not built at {harness.BINARY}")
        self.cluster = Cluster()
        self.cluster.start()
        self.addCleanup(self.cluster.cleanup)
        subprocess.run([harness.BINARY, "migrate"], check=True, capture_output=True,
                       env={**os.environ, "MESHHOOK_STATS_DATABASE_URL": self.cluster.url})
        self.workdir = tempfile.mkdtemp(prefix="meshhook-fault-daemon.")
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop()

    def daemon(self, url=None, **env):
        settings = {"MESHHOOK_STATS_DATABASE_URL": url or self.cluster.url,
                    "MESHHOOK_STATS_WRITER_MAX_BACKOFF_MS": "1000",
                    "MESHHOOK_STATS_WRITER_BATCH_INTERVAL_MS": "50"}
        settings.update(env)
        d = harness.Daemon(env=settings, workdir=self.workdir)
        self.daemons.append(d)
        return d.start()

    def stored(self):
        rows = psql(self.cluster.port, "select run_id from execution_time_statistics")
        return [r for r in rows.split("\n") if r]

    def assert_stored_exactly_once(self, acked, timeout=90):
        harness.wait_until(lambda: len(self.stored()) >= len(acked), timeout=timeout,
                           what=f"{len(acked)} acknowledged runs in Postgres")
        rows = self.stored()
        self.assertEqual(len(rows), len(set(rows)), "a run was stored twice")
        self.assertEqual(set(rows) & acked, acked, "an acknowledged run was lost")
        return rows

    def test_postgres_stopped_under_ingest_loses_nothing(self):
        d = self.daemon()
        load = Load(d).start()
        time.sleep(3)
        self.cluster.stop(mode="immediate")
        harness.wait_until(lambda: harness.request("GET", d.api + "/readyz").json()["database"]
                           == "down", timeout=20, what="/readyz to report the database down")
        time.sleep(OUTAGE_SECONDS)
        acked_during_outage = len(load.acked)
        self.cluster.start()
        time.sleep(3)
        load.stop()
        self.assertEqual(load.failures, [], "an ingest request failed during the outage")
        self.assertGreater(acked_during_outage, 0)
        self.assert_stored_exactly_once(load.acked)
        harness.wait_until(lambda: harness.request("GET", d.api + "/readyz").json()["database"]
                           == "up", timeout=30, what="/readyz to report the database up")

    def test_sigkill_under_ingest_loses_nothing(self):
        d = self.daemon()
        load = Load(d, pause=0.0).start()
        time.sleep(3)
        d.kill()
        load.stop()
        self.assertTrue(load.acked)
        self.daemon()  # same spool directory
        rows = self.assert_stored_exactly_once(load.acked)
        # Runs whose request was cut off may or may not be stored; nothing else may be.
        self.assertLessEqual(len(rows), len(load.acked) + load.unanswered * load.batch)

    def test_torn_spool_tail_is_cut_off_at_start(self):
        closed = f"postgresql://postgres@127.0.0.1:{harness.free_port()}/meshhook_stats"
        d = self.daemon(url=closed)  # nothing leaves the spool
        batch = events(200)
        self.assertEqual(d.post_runs(batch).status, 202)
        d.kill()
        segments = sorted(glob.glob(os.path.join(self.workdir, "spool", "segment-*.spool")),
                          key=os.path.getsize)
        with open(segments[-1], "ab") as f:
            f.write(b"\x40\x00\x00\x00\x12\x34")  # half a record header: a torn write
        d2 = self.daemon()
        self.assert_stored_exactly_once({e["run_id"] for e in batch})
        self.assertIn("cutting off", d2.read_log())

    def post_batches(self, daemon, batches, size, enough_refused=None):
        """Posts batches of fresh runs; returns the run ids acknowledged (202) and refused,
        checking that every refusal is a 503 with Retry-After and an error body."""
        acked, refused = set(), set()
        for _ in range(batches):
            if enough_refused and len(refused) >= enough_refused:
                break
            batch = events(size)
            r = daemon.post_runs(batch)
            ids = {e["run_id"] for e in batch}
            if r.status == 202:
                acked |= ids
            else:
                self.assertEqual(r.status, 503, r.body)
                self.assertTrue(r.headers.get("Retry-After"))
                self.assertEqual(set(r.json()), {"error", "message"})
                refused |= ids
        return acked, refused

    def test_full_spool_answers_503_and_stores_only_what_it_acknowledged(self):
        closed = f"postgresql://postgres@127.0.0.1:{harness.free_port()}/meshhook_stats"
        d = self.daemon(url=closed, MESHHOOK_STATS_SPOOL_MAX_BYTES=str(1 << 20))
        acked, refused = self.post_batches(d, batches=40, size=1000)
        self.assertTrue(acked)
        self.assertTrue(refused)
        d.stop()
        self.daemon()  # the database is back
        rows = self.assert_stored_exactly_once(acked)
        time.sleep(1)
        self.assertEqual(set(self.stored()), acked, "a refused run was stored")
        self.assertEqual(len(rows), len(acked))

    def test_disk_full_answers_503_and_stores_exactly_what_it_acknowledged(self):
        # A real full disk: the spool on a 1 MiB tmpfs, far below spool.max_bytes, and no
        # database to drain it, so the disk fills before the spool's own limit is reached.
        mnt = tempfile.mkdtemp(prefix="meshhook-fault-tmpfs.")
        self.addCleanup(os.rmdir, mnt)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", mnt],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: " + mounted.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", mnt], check=True)
        spool = {"MESHHOOK_STATS_SPOOL_DIR": os.path.join(mnt, "spool"),
                 "MESHHOOK_STATS_SPOOL_MAX_BYTES": str(64 << 20),
                 "MESHHOOK_STATS_SPOOL_SEGMENT_BYTES": str(256 << 10)}
        closed = f"postgresql://postgres@127.0.0.1:{harness.free_port()}/meshhook_stats"
        d = self.daemon(url=closed, **spool)
        # ~70 bytes a run on disk: 1 MiB holds about 15,000.
        acked, refused = self.post_batches(d, batches=300, size=200, enough_refused=1000)
        self.assertTrue(acked, "nothing fit on the disk")
        self.assertTrue(refused, "the disk never filled up")
        self.assertNotEqual(harness.request("GET", d.api + "/readyz").status, 200)
        self.assertIn("No space left on device", d.read_log())
        d.stop()
        # The operator frees space (here: grows the tmpfs) and restarts with the database up.
        subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True, capture_output=True)
        self.daemon(**spool)
        rows = self.assert_stored_exactly_once(acked)
        time.sleep(1)
        self.assertEqual(set(self.stored()), acked, "a refused run was stored")
        self.assertEqual(len(rows), len(acked))


if __name__ == "__main__":
    unittest.main()
