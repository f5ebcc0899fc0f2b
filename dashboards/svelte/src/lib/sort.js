// Sorting the rows of WorkflowPercentileTable. Missing values sort last in both directions.

/**
 * @template {Record<string, unknown>} T
 * @param {T[]} rows
 * @param {string} key
 * @param {'ascending' | 'descending'} direction
 * @param {(row: T) => string} [labelOf] the text of the workflow column (for key "workflow")
 * @returns {T[]} a sorted copy
 */
export function sortRows(rows, key, direction, labelOf = (r) => String(r.workflow_id ?? '')) {
  const sign = direction === 'ascending' ? 1 : -1;
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  return [...rows].sort((a, b) => {
    if (key === 'workflow') return sign * collator.compare(labelOf(a), labelOf(b));
    const va = /** @type {number | null | undefined} */ (a[key]);
    const vb = /** @type {number | null | undefined} */ (b[key]);
    const ma = va === null || va === undefined || !Number.isFinite(va);
    const mb = vb === null || vb === undefined || !Number.isFinite(vb);
    if (ma || mb) return ma === mb ? 0 : ma ? 1 : -1;
    return sign * (va - vb) || collator.compare(labelOf(a), labelOf(b));
  });
}
