#!/usr/bin/env node
// A stand-in for meshhook-stats while developing the /ui page: serves dist/ at /ui/ and canned,
// deterministic statistics of the API's shape (the numbers change with the query, so a new
// range draws new numbers). Loopback only.
//
//   node tests/e2e/mock-server.mjs [--port 0] [--token demo-token]
// prints "mock-server listening on http://127.0.0.1:<port>" once it accepts connections.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, '../../dist');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const port = Number(arg('port', process.env.MOCK_PORT ?? 0));
const token = arg('token', process.env.MOCK_TOKEN ?? 'demo-token');
const delayMs = Number(process.env.MOCK_DELAY_MS ?? 30);

const WORKFLOWS = [
  { id: '3f6c2a9e-8b1d-4c57-9e0a-1d2b3c4d5e01', base: 120, rate: 40 },
  { id: '7a1e4b2c-5d6f-4a8b-9c0d-2e3f4a5b6c02', base: 850, rate: 12 },
  { id: 'b2c3d4e5-f6a7-4b8c-9d0e-3f4a5b6c7d03', base: 2400, rate: 6 },
  { id: 'c9d8e7f6-a5b4-4c3d-8e2f-4a5b6c7d8e04', base: 45000, rate: 1.5 },
  { id: 'd4e5f6a7-b8c9-4dae-8f01-5b6c7d8e9f05', base: 480000, rate: 0.3 },
  { id: 'e1f2a3b4-c5d6-4e7f-8091-6c7d8e9fa006', base: 35, rate: 90 },
];
const STATUS_SHARE = { succeeded: 0.9, failed: 0.07, canceled: 0.02, paused: 0.01 };
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A small deterministic PRNG seeded by a string. */
function rng(key) {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return () => {
    h = Math.imul(h ^ (h >>> 15), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    h ^= h >>> 16;
    return (h >>> 0) / 4294967296;
  };
}

const round = (v) => Math.round(v * 10) / 10;

/** Statistics of runs of `workflows` in [start, end), statuses filtered. */
function stats(workflows, start, end, statuses, key) {
  const r = rng(`${key}|${start}|${end}|${workflows.map((w) => w.id).join()}|${statuses.join()}`);
  const hours = Math.max(0, (end - start) / HOUR);
  const share = statuses.length ? statuses.reduce((s, x) => s + (STATUS_SHARE[x] ?? 0), 0) : 1;
  let count = 0;
  let weighted = 0;
  let logs = 0;
  let min = Infinity;
  let max = 0;
  for (const w of workflows) {
    const n = Math.round(w.rate * hours * share * (0.75 + r() * 0.5));
    count += n;
    weighted += n * w.base;
    logs += n * Math.log(w.base);
    if (n) {
      min = Math.min(min, w.base * (0.15 + r() * 0.1));
      max = Math.max(max, w.base * (6 + r() * 4));
    }
  }
  if (!count) {
    return { count: 0, avg: null, min: null, max: null, median: null, p95: null, p99: null };
  }
  // A mix of log-normal workflows: the median near the geometric mean, a long tail above it.
  const median = Math.exp(logs / count) * (0.85 + r() * 0.3);
  const spread = workflows.length > 1 ? 4 : 2;
  const p95 = median * (spread + r() * 1.5);
  const p99 = p95 * (1.4 + r() * 0.8);
  return {
    count,
    avg: round((weighted / count) * (1.1 + r() * 0.2)),
    min: round(min),
    max: round(Math.max(max, p99 * 1.2)),
    median: round(median),
    p95: round(p95),
    p99: round(p99),
  };
}

function group(s, fields) {
  return {
    workflow_id: null,
    status: null,
    bucket_start: null,
    ...fields,
    ...s,
    percentiles: { 50: s.median, 95: s.p95, 99: s.p99 },
  };
}

function floorTo(t, unit) {
  const step = unit === 'hour' ? HOUR : unit === 'day' ? DAY : 7 * DAY;
  return Math.floor(t / step) * step;
}

function groupsFor(q, start, end) {
  const all = q.workflows;
  switch (q.groupBy) {
    case 'workflow':
      return all.map((w) => group(stats([w], start, end, q.statuses, 'wf'), { workflow_id: w.id }));
    case 'status':
      return Object.keys(STATUS_SHARE)
        .filter((s) => !q.statuses.length || q.statuses.includes(s))
        .map((s) => group(stats(all, start, end, [s], 'st'), { status: s }));
    case 'hour':
    case 'day':
    case 'week': {
      const step = q.groupBy === 'hour' ? HOUR : q.groupBy === 'day' ? DAY : 7 * DAY;
      const out = [];
      for (let t = floorTo(start, q.groupBy); t < end; t += step) {
        const from = Math.max(t, start);
        const to = Math.min(t + step, end);
        // A daily rhythm: busier (and a little slower) in the afternoon.
        const hour = new Date(t).getUTCHours();
        const load = q.groupBy === 'hour' ? 0.4 + 0.6 * Math.sin(((hour - 6) / 24) * Math.PI * 2) ** 2 : 1;
        const s = stats(all, from, from + (to - from) * load, q.statuses, q.groupBy);
        out.push(group(s, { bucket_start: new Date(t).toISOString() }));
      }
      return out;
    }
    default:
      return [group(stats(all, start, end, q.statuses, 'none'), {})];
  }
}

const CHANGE_KEYS = ['count', 'avg', 'median', 'p95', 'p99'];

function executionTimes(q) {
  const groups = groupsFor(q, q.start, q.end);
  const limit = q.limit || 100;
  const offset = q.cursor ? Number(Buffer.from(q.cursor, 'base64url').toString()) || 0 : 0;
  const page = groups.slice(offset, offset + limit);
  const next = offset + limit < groups.length ? Buffer.from(String(offset + limit)).toString('base64url') : null;
  let previous = null;
  let change = null;
  if (q.compare) {
    const len = q.end - q.start;
    const prev = groupsFor(q, q.start - len, q.start);
    previous = { start: new Date(q.start - len).toISOString(), end: new Date(q.start).toISOString(), groups: prev };
    if (q.groupBy === 'none' && groups[0] && prev[0]) {
      change = {};
      for (const k of CHANGE_KEYS) {
        const a = groups[0][k];
        const b = prev[0][k];
        change[k] = a === null || b === null || !b ? null : round(((a - b) / b) * 100);
      }
    }
  }
  return {
    filters: filters(q),
    unit: 'ms',
    accuracy: q.exact ? { method: 'exact', max_relative_error: 0 } : { method: 'sketch', max_relative_error: 0.01 },
    groups: page,
    previous,
    change_percent: change,
    next_cursor: next,
  };
}

const BOUNDS = [0, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, null];

function histogram(q) {
  const r = rng(`h|${q.start}|${q.end}|${q.workflows.map((w) => w.id).join()}|${q.statuses.join()}`);
  const hours = (q.end - q.start) / HOUR;
  const share = q.statuses.length ? q.statuses.reduce((s, x) => s + (STATUS_SHARE[x] ?? 0), 0) : 1;
  const buckets = BOUNDS.slice(0, -1).map((lower, i) => ({ lower, upper: BOUNDS[i + 1], count: 0 }));
  for (const w of q.workflows) {
    const n = w.rate * hours * share;
    for (const b of buckets) {
      const mid = b.upper === null ? b.lower * 2 : (b.lower + b.upper) / 2 || 5;
      const z = Math.log(mid / w.base) / 0.8; // log-normal around the workflow's typical duration
      b.count += Math.round(n * 0.35 * Math.exp(-0.5 * z * z) * (0.8 + r() * 0.4));
    }
  }
  return { filters: filters(q), unit: 'ms', buckets };
}

/** Queue waits: the same shape, shorter and spread like the runs' (a tenth plus a little). */
function queueTimes(q) {
  const workflows = q.workflows.map((w) => ({ ...w, base: w.base / 10 + 8 }));
  const body = executionTimes({ ...q, workflows });
  return { ...body, filters: { ...body.filters, measure: q.measure } };
}

const STEPS = [
  { id: 'receive', type: 'webhook', share: 0.05, failing: 0 },
  { id: 'fetch-order', type: 'http', share: 0.45, failing: 0.08 },
  { id: 'transform', type: 'code', share: 0.15, failing: 0 },
  { id: 'notify', type: 'http', share: 0.35, failing: 0.2 },
];

/** One workflow's steps, by share of its run time. */
function stepTimes(q) {
  const w = q.workflows.length === 1 ? q.workflows[0] : null;
  const r = rng(`s|${q.start}|${q.end}|${w?.id}`);
  const runs = w ? Math.round(w.rate * ((q.end - q.start) / HOUR) * (0.75 + r() * 0.5)) : 0;
  const steps = runs
    ? STEPS.map((s) => {
        const failed = Math.round(runs * s.failing);
        const median = round(w.base * s.share * (0.9 + r() * 0.2));
        return {
          step_id: s.id, step_type: s.type, count: runs, failed, avg_ms: round(median * 1.2), median_ms: median,
          p95_ms: round(median * 3), p99_ms: round(median * 5), total_ms: round(median * 1.2 * runs),
          failure_ratio: Math.round((failed / runs) * 1e6) / 1e6, mean_attempts: Math.round((1 + (4 * failed) / runs) * 1000) / 1000,
        };
      })
    : [];
  const total = steps.reduce((a, s) => a + s.total_ms, 0);
  const medians = steps.reduce((a, s) => a + s.median_ms, 0);
  for (const s of steps) {
    s.share = Math.round((s.total_ms / total) * 1e6) / 1e6;
    s.median_share = Math.round((s.median_ms / medians) * 1e6) / 1e6;
  }
  steps.sort((a, b) => b.total_ms - a.total_ms);
  return {
    filters: { workflow_id: w?.id ?? null, start: new Date(q.start).toISOString(), end: new Date(q.end).toISOString(), tz: q.tz, statuses: ['succeeded', 'failed'], exact: q.exact },
    unit: 'ms',
    accuracy: { method: 'exact', max_relative_error: 0 },
    workflow_name: null,
    count: steps.reduce((a, s) => a + s.count, 0),
    total_ms: total,
    steps,
  };
}

function filters(q) {
  return {
    workflow_ids: q.workflowIds,
    start: new Date(q.start).toISOString(),
    end: new Date(q.end).toISOString(),
    tz: q.tz,
    statuses: q.statuses,
    percentiles: [50, 95, 99],
    group_by: q.groupBy,
    exact: q.exact,
  };
}

class BadRequest extends Error {}

function parseQuery(url) {
  const p = url.searchParams;
  const list = (k) => (p.get(k) ? p.get(k).split(',').map((s) => s.trim()).filter(Boolean) : []);
  const start = Date.parse(p.get('start_date') ?? '');
  const end = Date.parse(p.get('end_date') ?? '');
  if (!Number.isFinite(start)) throw new BadRequest('start_date must be an RFC 3339 date-time');
  if (!Number.isFinite(end)) throw new BadRequest('end_date must be an RFC 3339 date-time');
  if (start >= end) throw new BadRequest('start_date must be before end_date');
  if (end - start > 366 * DAY) throw new BadRequest('the range must not exceed 366 days');
  const groupBy = p.get('group_by') ?? 'none';
  if (!['none', 'workflow', 'status', 'hour', 'day', 'week'].includes(groupBy)) {
    throw new BadRequest('group_by must be one of none, workflow, status, hour, day, week');
  }
  const workflowIds = list('workflow_id');
  return {
    start,
    end,
    tz: p.get('tz') ?? 'UTC',
    statuses: list('status'),
    groupBy,
    compare: p.get('compare') === 'previous',
    exact: p.has('exact') ? p.get('exact') === 'true' : null,
    limit: Number(p.get('limit') ?? 0),
    measure: p.get('measure') ?? 'queue_wait',
    cursor: p.get('cursor'),
    workflowIds,
    workflows: workflowIds.length ? WORKFLOWS.filter((w) => workflowIds.includes(w.id)) : WORKFLOWS,
  };
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function serveUi(path, res) {
  const rel = path.slice('/ui/'.length) || 'index.html';
  const file = normalize(join(dist, rel));
  if (!file.startsWith(dist) || !existsSync(file) || !statSync(file).isFile()) {
    return send(res, 404, { error: 'not_found', message: existsSync(dist) ? `no such file: ${rel}` : 'dist/ is not built: npm run build' });
  }
  res.writeHead(200, {
    'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
    'Cache-Control': rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  createReadStream(file).pipe(res);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const path = url.pathname;
  if (path === '/healthz') return send(res, 200, 'ok\n');
  if (path === '/' || path === '/ui') return send(res, 301, '', { Location: '/ui/' });
  if (path.startsWith('/ui/')) return serveUi(path, res);
  const ROUTES = {
    '/api/v1/statistics/execution-times': executionTimes,
    '/api/v1/statistics/execution-times/histogram': histogram,
    '/api/v1/statistics/queue-times': queueTimes,
    '/api/v1/statistics/step-times': stepTimes,
  };
  if (Object.hasOwn(ROUTES, path)) {
    if (req.method !== 'GET') return send(res, 405, { error: 'method_not_allowed', message: 'use GET' });
    if (req.headers.authorization !== `Bearer ${token}`) {
      return send(res, 401, { error: 'unauthorized', message: 'a valid bearer token is required' }, { 'WWW-Authenticate': 'Bearer' });
    }
    let body;
    try {
      const q = parseQuery(url);
      if (path.endsWith('/step-times') && q.workflowIds.length !== 1) throw new BadRequest('workflow_id: exactly one');
      body = ROUTES[path](q);
    } catch (e) {
      if (e instanceof BadRequest) return send(res, 400, { error: 'bad_request', message: e.message });
      throw e;
    }
    return setTimeout(() => send(res, 200, body, { 'Cache-Control': 'no-store' }), delayMs);
  }
  return send(res, 404, { error: 'not_found', message: `no route for ${path}` });
});

server.listen(port, '127.0.0.1', () => {
  const { port: bound } = /** @type {import('node:net').AddressInfo} */ (server.address());
  console.log(`mock-server listening on http://127.0.0.1:${bound}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
