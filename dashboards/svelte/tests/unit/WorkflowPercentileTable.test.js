import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import WorkflowPercentileTable from '../../src/lib/WorkflowPercentileTable.svelte';
import { RANGE, TABLE, WF_A, WF_B, WF_C, fakeFetch, getToken, json } from './fixtures.js';

function show(props = {}) {
  return render(WorkflowPercentileTable, {
    apiBase: 'https://stats.test', getToken, range: RANGE, fetch: fakeFetch(TABLE), workflowHref: (id) => `/workflows/${id}`, ...props,
  });
}

const order = () => [...document.querySelectorAll('tbody tr')].map((tr) => tr.getAttribute('data-workflow-id'));
const header = (/** @type {string} */ key) => /** @type {HTMLElement} */ (document.querySelector(`th[data-column="${key}"]`));

describe('WorkflowPercentileTable', () => {
  it('is a real table with one row per workflow, linked', async () => {
    show({ workflowName: (id) => (id === WF_A ? 'Order sync' : id) });
    const table = await screen.findByRole('table');
    expect(within(table).getAllByRole('columnheader').map((th) => th.textContent?.replace(/[▲▼↕]/g, '').trim())).toEqual([
      'Workflow', 'Runs', 'Average', 'Median', 'p95', 'p99', 'Min', 'Max',
    ]);
    expect(within(table).getAllByRole('rowheader')).toHaveLength(3);
    const link = screen.getByRole('link', { name: 'Order sync' });
    expect(link.getAttribute('href')).toBe(`/workflows/${WF_A}`);
    const row = /** @type {HTMLElement} */ (document.querySelector(`tr[data-workflow-id="${WF_B}"]`));
    expect(row.querySelector('td[data-column="p95"]')?.textContent?.trim()).toBe('5 min 00 s');
    expect(row.querySelector('td[data-column="p99"]')?.textContent?.trim()).toBe('—');
  });

  it("shows the API's workflow_name, and the id where there is none", async () => {
    const named = { ...TABLE, groups: TABLE.groups.map((g) => (g.workflow_id === WF_B ? { ...g, workflow_name: 'Invoice export' } : g)) };
    show({ fetch: fakeFetch(named) });
    expect(await screen.findByRole('link', { name: 'Invoice export' })).toBeTruthy();
    expect(screen.getByRole('link', { name: WF_A }).getAttribute('href')).toBe(`/workflows/${WF_A}`);
    expect(screen.getByRole('link', { name: 'Invoice export' }).closest('th')?.getAttribute('title')).toBe(WF_B);
  });

  it('asks for one group per workflow', async () => {
    const fetch = fakeFetch(TABLE);
    show({ fetch });
    await screen.findByRole('table');
    expect(new URL(fetch.mock.calls[0][0]).searchParams.get('group_by')).toBe('workflow');
  });

  it('starts sorted by p95, slowest first', async () => {
    show();
    await screen.findByRole('table');
    expect(header('p95').getAttribute('aria-sort')).toBe('descending');
    expect(order()).toEqual([WF_B, WF_C, WF_A]);
  });

  it('sorts by a column when its heading is clicked, and reverses on a second click', async () => {
    show();
    await screen.findByRole('table');
    await fireEvent.click(within(header('count')).getByRole('button'));
    expect(header('count').getAttribute('aria-sort')).toBe('descending');
    expect(header('p95').getAttribute('aria-sort')).toBeNull();
    expect(order()).toEqual([WF_A, WF_C, WF_B]);
    await fireEvent.click(within(header('count')).getByRole('button'));
    expect(header('count').getAttribute('aria-sort')).toBe('ascending');
    expect(order()).toEqual([WF_B, WF_C, WF_A]);
  });

  it('puts workflows without a value last either way', async () => {
    show();
    await screen.findByRole('table');
    await fireEvent.click(within(header('p99')).getByRole('button'));
    expect(order()).toEqual([WF_C, WF_A, WF_B]);
    await fireEvent.click(within(header('p99')).getByRole('button'));
    expect(order()).toEqual([WF_A, WF_C, WF_B]);
  });

  it('sorts workflows by name A to Z first', async () => {
    show({ workflowName: (id) => ({ [WF_A]: 'charlie', [WF_B]: 'alpha', [WF_C]: 'Bravo' })[id] });
    await screen.findByRole('table');
    await fireEvent.click(within(header('workflow')).getByRole('button'));
    expect(header('workflow').getAttribute('aria-sort')).toBe('ascending');
    expect(order()).toEqual([WF_B, WF_C, WF_A]);
  });

  it('marks the selected workflow', async () => {
    show({ selectedWorkflowId: WF_C });
    await screen.findByRole('table');
    expect(document.querySelector(`tr[data-workflow-id="${WF_C}"]`)?.classList.contains('selected')).toBe(true);
    expect(document.querySelector(`tr[data-workflow-id="${WF_C}"] a`)?.getAttribute('aria-current')).toBe('true');
  });

  it('shows the empty and error states', async () => {
    show({ fetch: fakeFetch({ ...TABLE, groups: [] }) });
    expect(await screen.findByText('No workflow ran in this period.')).toBeTruthy();
  });

  it('shows a server error with a retry', async () => {
    show({ fetch: fakeFetch(json(500, { error: 'internal', message: 'boom' })) });
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toMatch(/had an error \(500\)/);
    expect(within(alert).getByRole('button', { name: 'Try again' })).toBeTruthy();
  });
});
