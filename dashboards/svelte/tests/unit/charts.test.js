import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import ExecutionTimeHistogram from '../../src/lib/ExecutionTimeHistogram.svelte';
import ExecutionTimeTrend from '../../src/lib/ExecutionTimeTrend.svelte';
import { HISTOGRAM, RANGE, TREND, fakeFetch, getToken, json } from './fixtures.js';

const base = { apiBase: 'https://stats.test', getToken, range: RANGE };

describe('ExecutionTimeTrend', () => {
  it('draws p50, p95 and p99 with a gap where a bucket had no runs', async () => {
    render(ExecutionTimeTrend, { ...base, fetch: fakeFetch(TREND) });
    await waitFor(() => expect(document.querySelector('path[data-series="p95"]')).toBeTruthy());
    for (const s of ['p50', 'p95', 'p99']) {
      const d = document.querySelector(`path[data-series="${s}"]`)?.getAttribute('d') ?? '';
      expect(d.match(/M/g)).toHaveLength(2); // two segments around the empty bucket
    }
  });

  it('has a text alternative: a summary label and a table of every point', async () => {
    render(ExecutionTimeTrend, { ...base, fetch: fakeFetch(TREND) });
    const img = await screen.findByRole('img');
    expect(img.getAttribute('aria-label')).toMatch(/p95 peaks at 303 ms/);
    const rows = document.querySelectorAll('[data-widget="trend"] tbody tr');
    expect(rows).toHaveLength(4);
    expect(rows[0].textContent).toMatch(/Mar 1, 00:00.*10.*100 ms.*300 ms.*900 ms/);
    expect(rows[2].textContent).toContain('—');
  });

  it('asks per hour for 7 days and per day for 30', async () => {
    const fetch = fakeFetch(TREND);
    const { rerender } = render(ExecutionTimeTrend, { ...base, fetch });
    await waitFor(() => expect(fetch).toHaveBeenCalledTimes(1));
    expect(new URL(fetch.mock.calls[0][0]).searchParams.get('group_by')).toBe('hour');
    await rerender({ range: { ...RANGE, preset: '30d', start: '2025-02-06T00:00:00.000Z' } });
    await waitFor(() => expect(fetch).toHaveBeenCalledTimes(2));
    expect(new URL(fetch.mock.calls[1][0]).searchParams.get('group_by')).toBe('day');
  });

  it('shows a tooltip from the keyboard', async () => {
    render(ExecutionTimeTrend, { ...base, fetch: fakeFetch(TREND) });
    const img = await screen.findByRole('img');
    expect(img.tabIndex).toBe(0);
    await fireEvent.keyDown(img, { key: 'ArrowRight' });
    expect(screen.getByRole('tooltip').textContent).toMatch(/Mar 1, 00:00.*10 runs.*p95 300 ms/s);
    await fireEvent.keyDown(img, { key: 'End' });
    expect(screen.getByRole('tooltip').textContent).toMatch(/Mar 1, 03:00.*13 runs/s);
    await fireEvent.keyDown(img, { key: 'Escape' });
    expect(screen.queryByRole('tooltip')).toBeNull();
  });

  it('says so when no bucket had runs', async () => {
    render(ExecutionTimeTrend, { ...base, fetch: fakeFetch({ ...TREND, groups: [] }) });
    expect(await screen.findByText('No runs in this period.')).toBeTruthy();
  });
});

describe('ExecutionTimeHistogram', () => {
  it('draws one bar per bucket and lists them in a table', async () => {
    const fetch = fakeFetch(HISTOGRAM);
    render(ExecutionTimeHistogram, { ...base, fetch });
    await waitFor(() => expect(document.querySelectorAll('rect.bar')).toHaveLength(4));
    expect(new URL(fetch.mock.calls[0][0]).pathname).toBe('/api/v1/statistics/execution-times/histogram');
    const rows = [...document.querySelectorAll('[data-widget="histogram"] tbody tr')].map((r) =>
      [...r.children].map((c) => c.textContent?.trim()),
    );
    expect(rows).toEqual([
      ['0 ms – 100 ms', '5', '8.3 %'],
      ['100 ms – 1 s', '40', '66.7 %'],
      ['1 s – 10 s', '12', '20.0 %'],
      ['10 s or more', '3', '5.0 %'],
    ]);
    expect(screen.getByRole('img').getAttribute('aria-label')).toMatch(/60 run durations.*most common is 100 ms – 1 s with 40 runs/);
  });

  it('says so when there were no runs', async () => {
    render(ExecutionTimeHistogram, { ...base, fetch: fakeFetch({ ...HISTOGRAM, buckets: HISTOGRAM.buckets.map((b) => ({ ...b, count: 0 })) }) });
    expect(await screen.findByText('No runs in this period.')).toBeTruthy();
  });

  it('shows a 403', async () => {
    render(ExecutionTimeHistogram, { ...base, fetch: fakeFetch(json(403, { error: 'forbidden', message: 'no' })) });
    expect((await screen.findByRole('alert')).textContent).toMatch(/No access.*403/s);
  });
});
