import { describe, expect, it } from 'vitest';
import { PRESETS, autoGroupBy, customRange, presetRange, utcToZonedLocal, zonedToUtc } from '../../src/lib/range.js';

const now = new Date('2025-03-10T12:34:56.789Z');

describe('presetRange', () => {
  it.each([
    ['24h', '2025-03-09T12:35:00.000Z'],
    ['7d', '2025-03-03T12:35:00.000Z'],
    ['30d', '2025-02-08T12:35:00.000Z'],
    ['90d', '2024-12-10T12:35:00.000Z'],
  ])('%s ends at the next whole minute and starts that long before', (preset, start) => {
    const r = presetRange(/** @type {any} */ (preset), now, 'Europe/Berlin');
    expect(r).toEqual({ preset, start, end: '2025-03-10T12:35:00.000Z', tz: 'Europe/Berlin' });
  });

  it('offers the four presets in order', () => {
    expect(PRESETS.map((p) => p.label)).toEqual(['24 h', '7 d', '30 d', '90 d']);
  });

  it('refuses an unknown preset', () => {
    expect(() => presetRange(/** @type {any} */ ('1y'), now)).toThrow(/unknown range preset/);
  });
});

describe('customRange', () => {
  it('reads wall-clock times in the user time zone', () => {
    expect(customRange('2025-03-01T10:00', '2025-03-02T10:00', 'Europe/Berlin')).toEqual({
      preset: 'custom', start: '2025-03-01T09:00:00.000Z', end: '2025-03-02T09:00:00.000Z', tz: 'Europe/Berlin',
    });
  });

  it('handles daylight saving time', () => {
    expect(zonedToUtc('2025-07-01T10:00', 'Europe/Berlin')?.toISOString()).toBe('2025-07-01T08:00:00.000Z');
    expect(zonedToUtc('2025-07-01T10:00', 'America/New_York')?.toISOString()).toBe('2025-07-01T14:00:00.000Z');
  });

  it('refuses an empty or backwards range', () => {
    expect(customRange('', '2025-03-02T10:00', 'UTC')).toBeNull();
    expect(customRange('2025-03-02T10:00', '2025-03-01T10:00', 'UTC')).toBeNull();
    expect(customRange('2025-03-02T10:00', '2025-03-02T10:00', 'UTC')).toBeNull();
  });

  it('round-trips through the datetime-local value', () => {
    expect(utcToZonedLocal('2025-03-01T09:00:00.000Z', 'Europe/Berlin')).toBe('2025-03-01T10:00');
    expect(utcToZonedLocal('2025-03-01T09:00:00.000Z', 'UTC')).toBe('2025-03-01T09:00');
  });
});

describe('autoGroupBy', () => {
  it('draws up to 7 days per hour and longer ranges per day', () => {
    expect(autoGroupBy(presetRange('24h', now, 'UTC'))).toBe('hour');
    expect(autoGroupBy(presetRange('7d', now, 'UTC'))).toBe('hour');
    expect(autoGroupBy(presetRange('30d', now, 'UTC'))).toBe('day');
    expect(autoGroupBy(presetRange('90d', now, 'UTC'))).toBe('day');
  });
});
