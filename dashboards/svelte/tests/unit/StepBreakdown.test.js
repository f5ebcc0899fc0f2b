import { render, screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import ExecutionTimeSummary from '../../src/lib/ExecutionTimeSummary.svelte';
import StepBreakdown from '../../src/lib/StepBreakdown.svelte';
import { formatCount, formatDuration, formatRatio } from '../../src/lib/format.js';
import { QUEUE, RANGE, STEPS, SUMMARY, WF_A, fakeFetch, getToken } from './fixtures.js';

const props = { apiBase: 'https://stats.test', getToken, range: RANGE };
const row = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.querySelector(`tr[data-step-id="${id}"]`));
const cell = (/** @type {string} */ id, /** @type {string} */ column) =>
  /** @type {HTMLElement} */ (row(id).querySelector(`td[data-column="${column}"]`));

describe('StepBreakdown', () => {
  it('asks step-times for the one workflow and range', async () => {
    const fetch = fakeFetch(STEPS);
    render(StepBreakdown, { ...props, workflowId: WF_A, fetch });
    await waitFor(() => expect(fetch).toHaveBeenCalled());
    const url = new URL(fetch.mock.calls[0][0]);
    expect(url.pathname).toBe('/api/v1/statistics/step-times');
    expect(Object.fromEntries(url.searchParams)).toEqual({ workflow_id: WF_A, start_date: RANGE.start, end_date: RANGE.end, tz: 'UTC' });
  });

  it('shows one row per step in the API order, formatted, failures marked', async () => {
    render(StepBreakdown, { ...props, workflowId: WF_A, fetch: fakeFetch(STEPS) });
    await waitFor(() => expect(row('notify')).toBeTruthy());
    const ids = [...document.querySelectorAll('tbody tr')].map((tr) => tr.getAttribute('data-step-id'));
    expect(ids).toEqual(['notify', 'fetch', 'transform']);
    for (const s of STEPS.steps) {
      expect(cell(s.step_id, 'count').textContent).toBe(formatCount(s.count));
      expect(cell(s.step_id, 'median').textContent).toBe(formatDuration(s.median_ms));
      expect(cell(s.step_id, 'p95').textContent).toBe(formatDuration(s.p95_ms));
      expect(cell(s.step_id, 'failure_ratio').textContent).toBe(formatRatio(s.failure_ratio));
      expect(row(s.step_id).querySelector('.mark') !== null).toBe(s.failed > 0);
    }
    expect(cell('notify', 'failure_ratio').textContent).toBe('30 %');
    expect(cell('notify', 'mean_attempts').textContent).toBe('2.2');
    expect(cell('transform', 'type').textContent).toBe('—');
  });

  it('draws a bar segment per step, as wide as its median share, failed ones marked', async () => {
    render(StepBreakdown, { ...props, workflowId: WF_A, fetch: fakeFetch(STEPS) });
    await waitFor(() => expect(document.querySelector('.segment')).toBeTruthy());
    const segments = /** @type {HTMLElement[]} */ ([...document.querySelectorAll('[data-testid="step-bar"] .segment')]);
    expect(segments.map((s) => [s.dataset.step, s.style.width, s.classList.contains('failed')])).toEqual([
      ['notify', '60%', true],
      ['fetch', '35%', false],
      ['transform', '5%', false],
    ]);
  });

  it('says so when the workflow has no steps', async () => {
    render(StepBreakdown, { ...props, workflowId: WF_A, fetch: fakeFetch({ ...STEPS, steps: [], count: 0 }) });
    await waitFor(() => expect(screen.getByText('No finished steps in this period.')).toBeTruthy());
  });
});

describe('ExecutionTimeSummary with queueWait', () => {
  it('shows the queue wait median and p95 beside the run times, from queue-times', async () => {
    const fetch = fakeFetch((/** @type {string} */ url) => (url.includes('/queue-times') ? QUEUE : SUMMARY));
    render(ExecutionTimeSummary, { ...props, fetch, queueWait: true, workflowId: WF_A, status: 'failed' });
    await waitFor(() => expect(document.querySelector('[data-stat="queue_p95"]')?.getAttribute('data-value')).toBe('1800'));
    const queue = new URL(fetch.mock.calls.map((c) => c[0]).find((u) => u.includes('/queue-times')));
    expect(Object.fromEntries(queue.searchParams)).toMatchObject({ group_by: 'none', measure: 'queue_wait', workflow_id: WF_A, status: 'failed' });
    const value = (/** @type {string} */ key) => document.querySelector(`[data-stat="${key}"] .value`)?.textContent;
    expect(value('queue_median')).toBe(formatDuration(42));
    expect(value('queue_p95')).toBe(formatDuration(1800));
    expect(value('p95')).toBe(formatDuration(SUMMARY.groups[0].p95));
  });

  it('asks nothing of queue-times without queueWait', async () => {
    const fetch = fakeFetch(SUMMARY);
    render(ExecutionTimeSummary, { ...props, fetch });
    await waitFor(() => expect(document.querySelector('[data-stat="p95"]')).toBeTruthy());
    expect(fetch.mock.calls.some((c) => c[0].includes('/queue-times'))).toBe(false);
    expect(document.querySelector('[data-stat="queue_p95"]')).toBeNull();
  });
});
