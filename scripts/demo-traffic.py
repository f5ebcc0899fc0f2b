#!/usr/bin/env python3
"""Demo traffic for `make run`: posts realistic workflow runs to meshhook-stats.

A few tenants, each with a handful of workflows whose durations are log-normal around their
own typical time, with some failures and timeouts. Each run also says where its time went:
how long it waited in the queue (queued_at; now and then a backlog of seconds) and its named
steps, one after the other, some retried; a failed run ends with a step that failed after five
attempts, and a timed-out run leaves out the step it was stuck in (it never ended). Ids are
stable across restarts so the dashboards keep their series. Stops on SIGTERM or after
--seconds."""

import argparse
import json
import math
import random
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid

NAMESPACE = uuid.UUID("6f0b7a52-2d0e-4c59-9b1b-0d6c1c0a7e11")
TENANTS = ["acme", "globex", "initech"]
WORKFLOWS = [  # name, median seconds, failure ratio
    ("stripe-webhook-sync", 0.35, 0.01),
    ("github-pr-triage", 1.8, 0.03),
    ("nightly-crm-export", 95.0, 0.05),
    ("slack-alert-router", 0.12, 0.005),
    ("invoice-pdf-render", 6.5, 0.02),
]
# Per workflow: the median queue wait (seconds) and the steps, each (id, type, share of the
# run's time, chance that it needs a retry).
SHAPES = {
    "stripe-webhook-sync": (0.04, [("verify-signature", "transform", 0.05, 0.0),
                                   ("fetch-customer", "http", 0.45, 0.04),
                                   ("upsert-crm-contact", "http", 0.5, 0.08)]),
    "github-pr-triage": (0.15, [("fetch-diff", "http", 0.25, 0.03),
                                ("classify-change", "llm", 0.6, 0.1),
                                ("apply-labels", "http", 0.15, 0.02)]),
    "nightly-crm-export": (1.5, [("query-contacts", "sql", 0.35, 0.0),
                                 ("build-csv", "transform", 0.2, 0.0),
                                 ("upload-to-s3", "http", 0.45, 0.15)]),
    "slack-alert-router": (0.02, [("parse-alert", "transform", 0.15, 0.0),
                                  ("choose-channel", "switch", 0.05, 0.0),
                                  ("post-to-slack", "http", 0.8, 0.05)]),
    "invoice-pdf-render": (0.4, [("load-invoice", "http", 0.15, 0.02),
                                 ("render-pdf", "http", 0.7, 0.06),
                                 ("email-customer", "http", 0.15, 0.04)]),
}
MAX_ATTEMPTS = 5  # MeshHook retries a failing step up to five times

stop = False


def on_term(*_):
    global stop
    stop = True


def ids(tenant, workflow):
    return (str(uuid.uuid5(NAMESPACE, tenant)), str(uuid.uuid5(NAMESPACE, tenant + "/" + workflow)))


def fmt(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def queue_wait(rng, median):
    """Mostly around the workflow's median; now and then the workers fall behind."""
    if rng.random() < 0.03:
        return rng.uniform(5, 40)
    return median * math.exp(rng.gauss(0, 0.8))


def steps(rng, workflow, status, start, end):
    """The run's steps back to back from start to end. A failed run stops at a step that failed
    its last attempt; a timed-out run stops inside a step that never ended (left out)."""
    shape = SHAPES[workflow][1]
    last = rng.randrange(len(shape)) if status in ("failed", "timeout") else len(shape) - 1
    weights = [share * math.exp(rng.gauss(0, 0.3)) for _, _, share, _ in shape[:last + 1]]
    out, at = [], start
    for i, (step_id, step_type, _, retry) in enumerate(shape[:last + 1]):
        until = end if i == last else at + (end - start) * weights[i] / sum(weights)
        if i == last and status == "timeout":
            break
        failed = i == last and status == "failed"
        attempts = MAX_ATTEMPTS if failed else 1 + sum(rng.random() < retry for _ in range(2))
        out.append({"id": step_id, "type": step_type, "started_at": fmt(at),
                    "finished_at": fmt(until), "status": "failed" if failed else "succeeded",
                    "attempts": attempts})
        at = until
    return out


def event(rng, tenant, workflow, median, failure, end=None):
    project_id, workflow_id = ids(tenant, workflow)
    seconds = median * math.exp(rng.gauss(0, 0.6))
    r = rng.random()
    status = "failed" if r < failure else "timeout" if r < failure * 1.2 else "succeeded"
    end = end if end is not None else time.time() - rng.uniform(0, 1)
    start = end - seconds
    queued = start - queue_wait(rng, SHAPES[workflow][0])
    return {"run_id": str(uuid.uuid4()), "project_id": project_id, "workflow_id": workflow_id,
            "workflow_name": f"{tenant}/{workflow}", "status": status, "queued_at": fmt(queued),
            "started_at": fmt(start), "finished_at": fmt(end),
            "steps": steps(rng, workflow, status, start, end)}


def pick(rng):
    tenant = rng.choice(TENANTS)
    # Popular workflows run more often.
    name, median, failure = WORKFLOWS[min(int(rng.expovariate(0.7)), len(WORKFLOWS) - 1)]
    return tenant, name, median, failure


def post(url, token, batch):
    req = urllib.request.Request(url, data=json.dumps(batch).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30):
        pass


def history(url, token, rng, days, per_hour):
    """Runs spread over the past days, so the dashboards have a history to show."""
    now = time.time()
    batch, sent = [], 0
    for hour in range(days * 24, 0, -1):
        for _ in range(per_hour):
            end = now - hour * 3600 + rng.uniform(0, 3600)
            batch.append(event(rng, *pick(rng), end=end))
            if len(batch) == 1000:
                post(url, token, batch)
                sent += len(batch)
                batch = []
    if batch:
        post(url, token, batch)
        sent += len(batch)
    print(f"demo-traffic: posted {sent} runs of history ({days} days)", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="http://127.0.0.1:9470/api/v1/runs")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--rate", type=float, default=20, help="runs per second")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long; 0 = never")
    ap.add_argument("--history-days", type=int, default=0,
                    help="first post this many days of past runs")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    token = open(args.token_file).read().strip()
    rng = random.Random()
    if args.history_days:
        history(args.url, token, rng, args.history_days, per_hour=40)
    started = time.monotonic()
    sent = 0
    while not stop and (not args.seconds or time.monotonic() - started < args.seconds):
        batch = []
        for _ in range(max(1, int(rng.expovariate(1 / args.rate)))):
            batch.append(event(rng, *pick(rng)))
        try:
            post(args.url, token, batch)
            sent += len(batch)
        except urllib.error.HTTPError as e:
            print(f"demo-traffic: {e.code} {e.read()[:200]!r}", file=sys.stderr)
        except OSError as e:
            print(f"demo-traffic: {e}", file=sys.stderr)
        time.sleep(1)
    print(f"demo-traffic: sent {sent} runs", file=sys.stderr)


if __name__ == "__main__":
    main()
