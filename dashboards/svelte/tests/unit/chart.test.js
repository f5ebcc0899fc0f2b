import { describe, expect, it } from 'vitest';
import { labelIndexes, linear, linePath, nearestIndex, niceTicks } from '../../src/lib/chart.js';
import { sortRows } from '../../src/lib/sort.js';

describe('niceTicks', () => {
  it('steps durations in units people read', () => {
    expect(niceTicks(1400, 4, 'duration')).toEqual([0, 500, 1000, 1500]);
    expect(niceTicks(200_000, 4, 'duration')).toEqual([0, 60_000, 120_000, 180_000, 240_000]);
  });

  it('steps counts by 1, 2, 5 and never below 1', () => {
    expect(niceTicks(7200, 4)).toEqual([0, 2000, 4000, 6000, 8000]);
    expect(niceTicks(2, 4)).toEqual([0, 1, 2]);
  });

  it('has an axis when there is nothing to draw', () => {
    expect(niceTicks(0)).toEqual([0, 1]);
  });
});

describe('linePath', () => {
  it('breaks the line where a value is missing', () => {
    const x = (/** @type {number} */ i) => i * 10;
    expect(linePath([1, 2, null, 4, 5], x, linear(0, 10, 100, 0))).toBe('M0.0,90.0L10.0,80.0M30.0,60.0L40.0,50.0');
  });
});

describe('labelIndexes and nearestIndex', () => {
  it('labels evenly, starting with the first point', () => {
    expect(labelIndexes(10, 4)).toEqual([0, 3, 6, 9]);
    expect(labelIndexes(0, 4)).toEqual([]);
  });

  it('finds the point under the pointer, clamped to the plot', () => {
    expect(nearestIndex(55, 11, 0, 100)).toBe(6);
    expect(nearestIndex(-20, 11, 0, 100)).toBe(0);
    expect(nearestIndex(500, 11, 0, 100)).toBe(10);
  });
});

describe('sortRows', () => {
  const rows = [
    { workflow_id: 'b', p95: 30 },
    { workflow_id: 'a', p95: null },
    { workflow_id: 'c', p95: 10 },
    { workflow_id: 'd', p95: 20 },
  ];
  it('sorts numbers both ways with missing values last', () => {
    expect(sortRows(rows, 'p95', 'descending').map((r) => r.workflow_id)).toEqual(['b', 'd', 'c', 'a']);
    expect(sortRows(rows, 'p95', 'ascending').map((r) => r.workflow_id)).toEqual(['c', 'd', 'b', 'a']);
  });

  it('sorts names naturally', () => {
    const named = [{ workflow_id: 'wf-10' }, { workflow_id: 'wf-9' }, { workflow_id: 'Wf-1' }];
    expect(sortRows(named, 'workflow', 'ascending').map((r) => r.workflow_id)).toEqual(['Wf-1', 'wf-9', 'wf-10']);
  });

  it('does not change its input', () => {
    const copy = structuredClone(rows);
    sortRows(rows, 'p95', 'ascending');
    expect(rows).toEqual(copy);
  });
});
