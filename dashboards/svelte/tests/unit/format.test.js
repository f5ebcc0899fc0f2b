import { describe, expect, it } from 'vitest';
import { MISSING, changeDirection, formatBucket, formatChange, formatCount, formatDuration, formatDurationShort, formatRange } from '../../src/lib/format.js';

const en = 'en-US';

describe('formatDuration', () => {
  it.each([
    [0, '0 ms'],
    [0.42, '420 µs'],
    [4.2, '4.2 ms'],
    [42, '42 ms'],
    [842.4, '842 ms'],
    [999.6, '1 s'],
    [1234, '1.23 s'],
    [12_345, '12.3 s'],
    [59_990, '1 min 00 s'],
    [65_000, '1 min 05 s'],
    [754_000, '12 min 34 s'],
    [3_599_600, '1 h 00 min'],
    [7_800_000, '2 h 10 min'],
    [90_000_000, '25 h 00 min'],
  ])('says %d ms as "%s"', (ms, text) => {
    expect(formatDuration(ms, en)).toBe(text);
  });

  it('shows a dash when there is no value', () => {
    expect(formatDuration(null, en)).toBe(MISSING);
    expect(formatDuration(undefined, en)).toBe(MISSING);
    expect(formatDuration(Number.NaN, en)).toBe(MISSING);
  });

  it('follows the locale for the decimal separator', () => {
    expect(formatDuration(1234, 'de-DE')).toBe('1,23 s');
  });
});

describe('formatDurationShort', () => {
  it.each([
    [0, '0'],
    [250, '250 ms'],
    [1500, '1.5 s'],
    [120_000, '2 min'],
    [5_400_000, '1.5 h'],
  ])('labels an axis tick of %d ms "%s"', (ms, text) => {
    expect(formatDurationShort(ms, en)).toBe(text);
  });
});

describe('formatChange and changeDirection', () => {
  it.each([
    [12.345, '+12.3 %', 'up'],
    [-3, '−3 %', 'down'],
    [0.04, '0 %', 'flat'],
    [150.4, '+150 %', 'up'],
    [null, MISSING, 'none'],
  ])('says a change of %s as "%s" (%s)', (pct, text, dir) => {
    expect(formatChange(pct, en)).toBe(text);
    expect(changeDirection(pct)).toBe(dir);
  });
});

describe('formatCount, formatBucket, formatRange', () => {
  it('groups thousands', () => {
    expect(formatCount(1234567, en)).toBe('1,234,567');
    expect(formatCount(null, en)).toBe(MISSING);
  });

  it('shows a bucket in the given time zone', () => {
    expect(formatBucket('2025-03-01T23:00:00Z', 'hour', 'UTC', en)).toBe('Mar 1, 23:00');
    expect(formatBucket('2025-03-01T23:00:00Z', 'hour', 'Europe/Berlin', en)).toBe('Mar 2, 00:00');
    expect(formatBucket('2025-03-01T00:00:00Z', 'day', 'UTC', en)).toBe('Mar 1, 2025');
  });

  it('shows a range in the given time zone', () => {
    expect(formatRange('2025-03-01T00:00:00Z', '2025-03-08T00:00:00Z', 'UTC', en)).toBe('Mar 1, 2025, 00:00 – Mar 8, 2025, 00:00');
  });
});
