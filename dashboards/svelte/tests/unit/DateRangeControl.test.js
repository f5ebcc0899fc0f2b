import { fireEvent, render, screen } from '@testing-library/svelte';
import { describe, expect, it, vi } from 'vitest';
import DateRangeControl from '../../src/lib/DateRangeControl.svelte';

const now = () => new Date('2025-03-10T12:34:56Z');

function show(props = {}) {
  const onchange = vi.fn();
  render(DateRangeControl, { now, tz: 'Europe/Berlin', onchange, ...props });
  return onchange;
}

describe('DateRangeControl', () => {
  it('offers the presets as radio buttons, 7 days by default, and names the time zone', () => {
    show();
    const radios = screen.getAllByRole('radio');
    expect(radios.map((r) => r.closest('label')?.textContent?.trim())).toEqual(['24 h', '7 d', '30 d', '90 d', 'Custom']);
    expect(/** @type {HTMLInputElement} */ (screen.getByRole('radio', { name: '7 d' })).checked).toBe(true);
    expect(screen.getByText('Times in Europe/Berlin')).toBeTruthy();
    expect(screen.getByRole('group', { name: 'Date range' })).toBeTruthy();
  });

  it.each([
    ['24 h', '24h', '2025-03-09T12:35:00.000Z'],
    ['30 d', '30d', '2025-02-08T12:35:00.000Z'],
    ['90 d', '90d', '2024-12-10T12:35:00.000Z'],
  ])('"%s" picks the last %s', async (label, preset, start) => {
    const onchange = show();
    await fireEvent.click(screen.getByRole('radio', { name: label }));
    expect(onchange).toHaveBeenCalledWith({ preset, start, end: '2025-03-10T12:35:00.000Z', tz: 'Europe/Berlin' });
  });

  it('reads a custom range in the user time zone', async () => {
    const onchange = show();
    await fireEvent.click(screen.getByRole('radio', { name: 'Custom' }));
    expect(onchange).not.toHaveBeenCalled();
    const from = /** @type {HTMLInputElement} */ (screen.getByLabelText('From'));
    const to = /** @type {HTMLInputElement} */ (screen.getByLabelText('To'));
    expect(from.value).toBe('2025-03-03T13:35'); // the current range, in Berlin time
    await fireEvent.input(from, { target: { value: '2025-03-01T10:00' } });
    await fireEvent.input(to, { target: { value: '2025-03-02T10:00' } });
    await fireEvent.submit(screen.getByRole('button', { name: 'Apply' }).closest('form'));
    expect(onchange).toHaveBeenCalledWith({
      preset: 'custom', start: '2025-03-01T09:00:00.000Z', end: '2025-03-02T09:00:00.000Z', tz: 'Europe/Berlin',
    });
  });

  it('refuses a custom range that ends before it starts', async () => {
    const onchange = show();
    await fireEvent.click(screen.getByRole('radio', { name: 'Custom' }));
    await fireEvent.input(screen.getByLabelText('From'), { target: { value: '2025-03-05T10:00' } });
    await fireEvent.input(screen.getByLabelText('To'), { target: { value: '2025-03-02T10:00' } });
    await fireEvent.submit(screen.getByRole('button', { name: 'Apply' }).closest('form'));
    expect(screen.getByRole('alert').textContent).toMatch(/start must be before the end/);
    expect(onchange).not.toHaveBeenCalled();
  });
});
