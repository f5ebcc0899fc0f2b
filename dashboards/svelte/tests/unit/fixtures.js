// Canned API answers of the statistics endpoint's shape, and a fetch double that serves them.
import { vi } from 'vitest';

export const WF_A = '3f6c2a9e-8b1d-4c57-9e0a-1d2b3c4d5e01';
export const WF_B = '7a1e4b2c-5d6f-4a8b-9c0d-2e3f4a5b6c02';
export const WF_C = 'b2c3d4e5-f6a7-4b8c-9d0e-3f4a5b6c7d03';

/** @param {Partial<import('../../src/lib/api.js').StatisticsGroup>} g */
export function group(g) {
  return { workflow_id: null, status: null, bucket_start: null, count: 0, avg: null, min: null, max: null, median: null, p95: null, p99: null, ...g };
}

export const RANGE = { preset: '7d', start: '2025-03-01T00:00:00.000Z', end: '2025-03-08T00:00:00.000Z', tz: 'UTC' };

export const SUMMARY = {
  filters: { workflow_ids: [], start: RANGE.start, end: RANGE.end, tz: 'UTC', statuses: [], percentiles: [50, 95, 99], group_by: 'none', exact: null },
  unit: 'ms',
  accuracy: { method: 'sketch', max_relative_error: 0.01 },
  groups: [group({ count: 1234, avg: 1520.5, min: 8.2, max: 4_020_000, median: 842, p95: 12_400, p99: 95_000 })],
  previous: { start: '2025-02-22T00:00:00.000Z', end: RANGE.start, groups: [group({ count: 1100 })] },
  change_percent: { count: 12.2, avg: -4.04, median: 0, p95: 25.55, p99: null },
  next_cursor: null,
};

export const TABLE = {
  ...SUMMARY,
  previous: null,
  change_percent: null,
  groups: [
    group({ workflow_id: WF_A, count: 500, avg: 120, min: 10, max: 900, median: 100, p95: 400, p99: 800 }),
    group({ workflow_id: WF_B, count: 20, avg: 61_000, min: 1000, max: 3_700_000, median: 45_000, p95: 300_000, p99: null }),
    group({ workflow_id: WF_C, count: 300, avg: 2400, min: 80, max: 20_000, median: 2000, p95: 9000, p99: 15_000 }),
  ],
};

export const TREND = {
  ...TABLE,
  groups: [0, 1, 2, 3].map((i) =>
    group({
      bucket_start: new Date(Date.parse(RANGE.start) + i * 3_600_000).toISOString(),
      count: i === 2 ? 0 : 10 + i,
      median: i === 2 ? null : 100 + i,
      p95: i === 2 ? null : 300 + i,
      p99: i === 2 ? null : 900 + i,
    }),
  ),
};

export const HISTOGRAM = {
  filters: SUMMARY.filters,
  unit: 'ms',
  buckets: [
    { lower: 0, upper: 100, count: 5 },
    { lower: 100, upper: 1000, count: 40 },
    { lower: 1000, upper: 10_000, count: 12 },
    { lower: 10_000, upper: null, count: 3 },
  ],
};

/**
 * @param {number} status
 * @param {unknown} body
 */
export function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

/**
 * A fetch double: each call gets the next answer (a body for 200, a Response, an Error to
 * throw, or a function of the URL); the last answer repeats.
 * @param {...unknown} answers
 */
export function fakeFetch(...answers) {
  let i = 0;
  return vi.fn(async (/** @type {string} */ url) => {
    const a = answers[Math.min(i++, answers.length - 1)];
    const v = await (typeof a === 'function' ? a(url) : a);
    if (v instanceof Error) throw v;
    if (v instanceof Response) return v;
    return json(200, v);
  });
}

/** A getToken that resolves to a fixed token. */
export const getToken = async () => 'test-token';

export const QUEUE = {
  ...SUMMARY,
  filters: { ...SUMMARY.filters, measure: 'queue_wait' },
  accuracy: { method: 'exact', max_relative_error: 0 },
  groups: [group({ count: 1234, avg: 95, min: 0, max: 60_000, median: 42, p95: 1800, p99: 9000 })],
  previous: null,
  change_percent: null,
};

/** @param {Partial<import('../../src/lib/api.js').StepTimes>} s */
export function step(s) {
  return {
    step_id: 'step', step_type: 'http', count: 10, failed: 0, avg_ms: 1, median_ms: 1, p95_ms: 1, p99_ms: 1, total_ms: 10,
    failure_ratio: 0, mean_attempts: 1, share: null, median_share: null, ...s,
  };
}

export const STEPS = {
  filters: { workflow_id: WF_A, start: RANGE.start, end: RANGE.end, tz: 'UTC', statuses: ['succeeded', 'failed'], exact: null },
  unit: 'ms',
  accuracy: { method: 'exact', max_relative_error: 0 },
  workflow_name: 'order sync',
  count: 30,
  total_ms: 10_000,
  steps: [
    step({ step_id: 'notify', count: 10, failed: 3, median_ms: 600, p95_ms: 2500, total_ms: 6000, failure_ratio: 0.3, mean_attempts: 2.2, share: 0.6, median_share: 0.6 }),
    step({ step_id: 'fetch', count: 10, median_ms: 350, p95_ms: 900, total_ms: 3500, share: 0.35, median_share: 0.35 }),
    step({ step_id: 'transform', step_type: '', count: 10, median_ms: 50, p95_ms: 80, total_ms: 500, share: 0.05, median_share: 0.05 }),
  ],
};
