#!/usr/bin/env python3
"""Open-loop load for the statistics endpoint: requests start at a fixed rate whatever the
answers take, and each latency runs from the moment its request was due (so a slow answer
delays no later measurement: no coordinated omission). The queries are statistics.lua's
mixed kinds; each request carries the JWT of its workflow's tenant.

    open_loop.py http://127.0.0.1:PORT TOKENS.json [--rate 300] [--seconds 20]
                 [--connections 32] [--kind mixed] [--exact]

Connections stay open (keep-alive); the daemon serves one per worker thread, so keep
--connections at most api.threads. Prints: rate, answered, errors, p50/p99/p99.9/max in ms.
"""
import argparse
import asyncio
import json
import math
import random
import time
import urllib.parse

DATA_END = 1767225600  # 2026-01-01T00:00:00Z; the data covers the 90 days before
KINDS = ["wf24h", "wf7d", "wf90d", "tenant30d", "dayseries"]


def workflow(n):
    return f"00000000-0000-0000-0000-{n:012d}"


def project(n):
    return f"00000000-0000-0000-0001-{n:012d}"


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def build(kind, exact, rng):
    """The same queries as statistics.lua's build()."""
    if kind == "mixed":
        kind = rng.choice(KINDS)
    w = 0 if kind == "wf400d" else math.floor(1000 * rng.random() ** 2)
    tenant = w % 100
    t_end = DATA_END - rng.randint(0, 86399)
    if kind in ("wf24h", "wf7d", "wf90d", "wf400d"):
        days = {"wf24h": 1, "wf7d": 7, "wf90d": 89, "wf400d": 400}[kind]
        q = {"workflow_id": workflow(w), "start_date": rfc3339(t_end - days * 86400),
             "end_date": rfc3339(t_end)}
    elif kind == "tenant30d":
        q = {"workflow_id": ",".join(workflow(tenant + 100 * i) for i in range(10)),
             "group_by": "workflow", "start_date": rfc3339(t_end - 30 * 86400),
             "end_date": rfc3339(t_end)}
    else:  # dayseries
        day_end = DATA_END - 86400 * rng.randint(0, 5)
        q = {"workflow_id": workflow(w), "group_by": "day",
             "start_date": rfc3339(day_end - 30 * 86400), "end_date": rfc3339(day_end)}
    if exact:
        q["exact"] = "true"
    return "/api/v1/statistics/execution-times?" + urllib.parse.urlencode(q, safe=",:"), project(tenant)


async def request(pool, host, path, token):
    reader, writer = await pool.get()
    try:
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                      f"Authorization: Bearer {token}\r\n\r\n").encode())
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        pool.put_nowait((reader, writer))
        return int(status_line.split()[1])
    except Exception:
        writer.close()
        pool.put_nowait(await asyncio.open_connection(*host.split(":")))
        return 0


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("tokens")
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--kind", default="mixed")
    parser.add_argument("--exact", action="store_true")
    args = parser.parse_args()
    tokens = json.load(open(args.tokens))
    host = urllib.parse.urlparse(args.url).netloc
    pool = asyncio.Queue()
    for _ in range(args.connections):
        pool.put_nowait(await asyncio.open_connection(*host.split(":")))
    rng = random.Random()
    latencies, errors = [], 0

    async def one(due, path, token):
        nonlocal errors
        status = await request(pool, host, path, token)
        latencies.append(time.perf_counter() - due)
        if status != 200:
            errors += 1

    total = int(args.rate * args.seconds)
    start = time.perf_counter() + 0.1
    tasks = []
    for i in range(total):
        due = start + i / args.rate
        path, tenant = build(args.kind, args.exact, rng)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, path, tokens[tenant])))
    await asyncio.gather(*tasks)
    sent_for = time.perf_counter() - start
    latencies.sort()

    def q(f):
        return latencies[min(len(latencies) - 1, int(f * len(latencies)))] * 1000

    print(f"rate {args.rate:g}/s, {len(latencies)} answered in {sent_for:.1f} s, errors {errors}, "
          f"p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, p99.9 {q(0.999):.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
