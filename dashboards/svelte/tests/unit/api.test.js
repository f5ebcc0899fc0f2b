import { describe, expect, it } from 'vitest';
import { StatisticsError, createStatisticsClient, describeError, queryString } from '../../src/lib/api.js';
import { SUMMARY, fakeFetch, json } from './fixtures.js';

const q = { start: '2025-03-01T00:00:00.000Z', end: '2025-03-08T00:00:00.000Z', tz: 'Europe/Berlin' };

describe('queryString', () => {
  it('names the parameters as the API does', () => {
    const s = queryString({ ...q, workflowId: ['a', 'b'], status: 'succeeded', groupBy: 'day', compare: true, percentiles: [50, 90], exact: true, limit: 10, cursor: 'xyz' });
    expect(Object.fromEntries(new URLSearchParams(s))).toEqual({
      workflow_id: 'a,b', start_date: q.start, end_date: q.end, tz: 'Europe/Berlin', status: 'succeeded',
      percentiles: '50,90', group_by: 'day', compare: 'previous', exact: 'true', limit: '10', cursor: 'xyz',
    });
  });

  it('leaves out what is not asked for', () => {
    expect(queryString({ ...q, workflowId: null, status: null })).toBe('start_date=2025-03-01T00%3A00%3A00.000Z&end_date=2025-03-08T00%3A00%3A00.000Z&tz=Europe%2FBerlin');
  });
});

describe('createStatisticsClient', () => {
  it('sends the token as a bearer and joins the base URL', async () => {
    const fetch = fakeFetch(SUMMARY);
    const client = createStatisticsClient({ apiBase: 'https://stats.example.com/', getToken: async () => 'jwt', fetch });
    expect(await client.executionTimes(q)).toEqual(SUMMARY);
    const [url, init] = fetch.mock.calls[0];
    expect(url).toMatch(/^https:\/\/stats\.example\.com\/api\/v1\/statistics\/execution-times\?start_date=/);
    expect(init.headers.Authorization).toBe('Bearer jwt');
  });

  it('sends no Authorization header without a token', async () => {
    const fetch = fakeFetch(SUMMARY);
    await createStatisticsClient({ apiBase: '', getToken: async () => null, fetch }).histogram(q);
    expect(fetch.mock.calls[0][0]).toMatch(/^\/api\/v1\/statistics\/execution-times\/histogram\?/);
    expect(fetch.mock.calls[0][1].headers.Authorization).toBeUndefined();
  });

  it('follows next_cursor to collect every group', async () => {
    const fetch = fakeFetch(
      { ...SUMMARY, groups: [{ count: 1 }], next_cursor: 'p2' },
      { ...SUMMARY, groups: [{ count: 2 }], next_cursor: 'p3' },
      { ...SUMMARY, groups: [{ count: 3 }], next_cursor: null },
    );
    const all = await createStatisticsClient({ apiBase: '', getToken: async () => 't', fetch }).executionTimesAll(q);
    expect(all.groups.map((g) => g.count)).toEqual([1, 2, 3]);
    expect(fetch.mock.calls[2][0]).toContain('cursor=p3');
  });

  it.each([
    [401, 'unauthorized'],
    [403, 'forbidden'],
    [400, 'bad_request'],
    [503, 'unavailable'],
    [500, 'server'],
    [502, 'server'],
  ])('turns HTTP %d into a "%s" error with the API message', async (status, kind) => {
    const fetch = fakeFetch(json(status, { error: 'x', message: 'the reason' }));
    const err = await createStatisticsClient({ apiBase: '', getToken: async () => 't', fetch }).executionTimes(q).catch((e) => e);
    expect(err).toBeInstanceOf(StatisticsError);
    expect(err).toMatchObject({ kind, status, message: 'the reason', code: 'x' });
  });

  it('waits as a 429 says and asks again, then gives up with the error', async () => {
    const busy = () => json(429, { error: 'too_many_requests', message: 'at most 4' });
    const fetch = fakeFetch(busy, busy, { groups: [] });
    const client = createStatisticsClient({ apiBase: 'https://stats.test', getToken: () => 't', fetch });
    const started = Date.now();
    await expect(client.executionTimes({ start: 'a', end: 'b' })).resolves.toEqual({ groups: [] });
    expect(fetch).toHaveBeenCalledTimes(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900); // two waits of 0.5 to 1 s
    const refused = createStatisticsClient({ apiBase: 'https://stats.test', getToken: () => 't', fetch: fakeFetch(busy) });
    await expect(refused.executionTimes({ start: 'a', end: 'b' })).rejects.toMatchObject({ status: 429, code: 'too_many_requests' });
  }, 20_000);

  it('turns a failed fetch into a network error', async () => {
    const fetch = fakeFetch(new TypeError('Failed to fetch'));
    const err = await createStatisticsClient({ apiBase: '', getToken: async () => 't', fetch }).executionTimes(q).catch((e) => e);
    expect(err).toMatchObject({ kind: 'network' });
  });

  it('copes with an error page that is not JSON', async () => {
    const fetch = fakeFetch(new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
    const err = await createStatisticsClient({ apiBase: '', getToken: async () => 't', fetch }).executionTimes(q).catch((e) => e);
    expect(err).toMatchObject({ kind: 'server', status: 502, message: 'Bad Gateway' });
  });
});

describe('describeError', () => {
  it('tells a person what happened and what to do', () => {
    expect(describeError(new StatisticsError('unauthorized', 'x', 401)).detail).toMatch(/401.*Sign in again/);
    expect(describeError(new StatisticsError('network', 'x')).title).toMatch(/Cannot reach/);
    expect(describeError(new StatisticsError('unavailable', 'database down', 503)).detail).toMatch(/503.*database down/);
    expect(describeError(new Error('boom')).detail).toBe('boom');
  });
});
