import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import ExecutionTimeSummary from '../../src/lib/ExecutionTimeSummary.svelte';
import { formatChange, formatCount, formatDuration } from '../../src/lib/format.js';
import { RANGE, SUMMARY, fakeFetch, getToken, group, json } from './fixtures.js';

/** @param {ReturnType<typeof fakeFetch>} fetch */
function show(fetch, props = {}) {
  return render(ExecutionTimeSummary, { apiBase: 'https://stats.test', getToken, range: RANGE, fetch, ...props });
}

const stat = (/** @type {string} */ key) => /** @type {HTMLElement} */ (document.querySelector(`[data-stat="${key}"]`));

describe('ExecutionTimeSummary', () => {
  it('shows loading until the numbers arrive', async () => {
    /** @type {(r: Response) => void} */
    let answer = () => {};
    const fetch = fakeFetch(() => new Promise((ok) => (answer = ok)));
    show(fetch);
    expect(screen.getByRole('status').textContent).toMatch(/Loading/);
    expect(document.querySelector('[data-widget="summary"]')?.getAttribute('aria-busy')).toBe('true');
    await waitFor(() => expect(fetch).toHaveBeenCalled());
    answer(json(200, SUMMARY));
    await waitFor(() => expect(stat('p95')).toBeTruthy());
    expect(document.querySelector('[data-widget="summary"]')?.getAttribute('data-state')).toBe('ready');
  });

  it('shows every statistic formatted for people, with its change', async () => {
    show(fakeFetch(SUMMARY));
    await waitFor(() => expect(stat('count')).toBeTruthy());
    const g = SUMMARY.groups[0];
    expect(stat('count').querySelector('.value')?.textContent).toBe(formatCount(g.count));
    for (const key of /** @type {const} */ (['avg', 'median', 'p95', 'p99', 'min', 'max'])) {
      expect(stat(key).querySelector('.value')?.textContent).toBe(formatDuration(g[key]));
      expect(stat(key).dataset.value).toBe(String(g[key]));
    }
    expect(stat('max').querySelector('.value')?.textContent).toBe('1 h 07 min');
    expect(stat('p95').querySelector('.change')?.textContent).toContain(formatChange(25.55));
    expect(stat('p95').querySelector('.change')?.classList.contains('bad')).toBe(true);
    expect(stat('avg').querySelector('.change')?.classList.contains('good')).toBe(true);
    expect(stat('count').querySelector('.change')?.classList.contains('neutral')).toBe(true);
    expect(stat('p99').querySelector('.change')?.textContent).toContain('—');
    expect(stat('min').querySelector('.change')).toBeNull();
    expect(screen.getByText(/within ±1 %/)).toBeTruthy();
  });

  it('asks for one group and the previous period, filtered as told', async () => {
    const fetch = fakeFetch(SUMMARY);
    show(fetch, { workflowId: 'wf-1', status: 'failed' });
    await waitFor(() => expect(fetch).toHaveBeenCalled());
    const url = new URL(fetch.mock.calls[0][0]);
    expect(url.pathname).toBe('/api/v1/statistics/execution-times');
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      group_by: 'none', compare: 'previous', workflow_id: 'wf-1', status: 'failed', start_date: RANGE.start, end_date: RANGE.end, tz: 'UTC',
    });
  });

  it('says so when there were no runs', async () => {
    show(fakeFetch({ ...SUMMARY, groups: [group({ count: 0 })], change_percent: null }));
    await waitFor(() => expect(screen.getByText('No runs in this period.')).toBeTruthy());
  });

  it('explains a 401 without offering to retry', async () => {
    show(fakeFetch(json(401, { error: 'unauthorized', message: 'token expired' })));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toMatch(/Not signed in.*401/s);
    expect(alert.dataset.errorKind).toBe('unauthorized');
    expect(screen.queryByRole('button', { name: 'Try again' })).toBeNull();
  });

  it('explains a network failure', async () => {
    show(fakeFetch(new TypeError('Failed to fetch')));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toMatch(/Cannot reach the statistics service/);
  });

  it('recovers from a 503 when the user tries again', async () => {
    const fetch = fakeFetch(json(503, { error: 'unavailable', message: 'database unavailable' }), SUMMARY);
    show(fetch);
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toMatch(/503.*database unavailable/s);
    await fireEvent.click(screen.getByRole('button', { name: 'Try again' }));
    await waitFor(() => expect(stat('p95')).toBeTruthy());
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('refetches when the range changes', async () => {
    const fetch = fakeFetch(SUMMARY, { ...SUMMARY, groups: [group({ count: 7, median: 5, p95: 6, p99: 7, avg: 5, min: 1, max: 9 })] });
    const { rerender } = show(fetch);
    await waitFor(() => expect(stat('count')?.dataset.value).toBe('1234'));
    await rerender({ range: { ...RANGE, preset: '24h', start: '2025-03-07T00:00:00.000Z' } });
    await waitFor(() => expect(stat('count')?.dataset.value).toBe('7'));
    expect(new URL(fetch.mock.calls[1][0]).searchParams.get('start_date')).toBe('2025-03-07T00:00:00.000Z');
  });
});
