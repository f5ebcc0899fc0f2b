// Formatting for people: durations (the API speaks milliseconds), counts, changes, dates.
// Pure functions, no DOM; the end-to-end test imports them to predict what the page shows.

/** Shown where a value is missing (no runs, or no previous period). */
export const MISSING = '—';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/**
 * @param {number} value
 * @param {number} digits significant digits
 * @param {string | undefined} locale
 */
function significant(value, digits, locale) {
  return new Intl.NumberFormat(locale, { maximumSignificantDigits: digits }).format(value);
}

/**
 * A duration in milliseconds as a person would say it: "840 µs", "42 ms", "1.24 s",
 * "3 min 05 s", "2 h 10 min". Three significant digits below a minute, whole units above.
 * @param {number | null | undefined} ms
 * @param {string} [locale] a BCP 47 tag; the user's locale when omitted
 * @returns {string}
 */
export function formatDuration(ms, locale) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return MISSING;
  const sign = ms < 0 ? '-' : '';
  const v = Math.abs(ms);
  if (v === 0) return '0 ms';
  if (v < 1) return `${sign}${significant(v * 1000, 3, locale)} µs`;
  if (v < SECOND) {
    // 999.6 ms would round to "1,000 ms": say "1 s" instead.
    if (Number(v.toPrecision(3)) < SECOND) return `${sign}${significant(v, 3, locale)} ms`;
  }
  if (v < MINUTE) {
    if (Number((v / SECOND).toPrecision(3)) < 60) return `${sign}${significant(v / SECOND, 3, locale)} s`;
  }
  if (v < HOUR) {
    let minutes = Math.floor(v / MINUTE);
    let seconds = Math.round((v - minutes * MINUTE) / SECOND);
    if (seconds === 60) {
      minutes += 1;
      seconds = 0;
    }
    if (minutes < 60) return `${sign}${minutes} min ${String(seconds).padStart(2, '0')} s`;
  }
  let hours = Math.floor(v / HOUR);
  let minutes = Math.round((v - hours * HOUR) / MINUTE);
  if (minutes === 60) {
    hours += 1;
    minutes = 0;
  }
  return `${sign}${new Intl.NumberFormat(locale).format(hours)} h ${String(minutes).padStart(2, '0')} min`;
}

/**
 * A short duration for chart axes: one unit, at most 3 significant digits ("250 ms", "1.5 s", "2 min").
 * @param {number} ms
 * @param {string} [locale]
 */
export function formatDurationShort(ms, locale) {
  if (!Number.isFinite(ms)) return MISSING;
  const v = Math.abs(ms);
  if (v === 0) return '0';
  if (v < 1) return `${significant(ms * 1000, 3, locale)} µs`;
  if (v < SECOND) return `${significant(ms, 3, locale)} ms`;
  if (v < MINUTE) return `${significant(ms / SECOND, 3, locale)} s`;
  if (v < HOUR) return `${significant(ms / MINUTE, 3, locale)} min`;
  return `${significant(ms / HOUR, 3, locale)} h`;
}

/**
 * A run count: "1,234".
 * @param {number | null | undefined} n
 * @param {string} [locale]
 */
export function formatCount(n, locale) {
  if (n === null || n === undefined || !Number.isFinite(n)) return MISSING;
  return new Intl.NumberFormat(locale).format(n);
}

/**
 * A ratio of 0..1 as a percentage with at most one decimal: "12.5 %", "0 %".
 * @param {number | null | undefined} ratio
 * @param {string} [locale]
 */
export function formatRatio(ratio, locale) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return MISSING;
  return `${new Intl.NumberFormat(locale, { maximumFractionDigits: 1 }).format(ratio * 100)} %`;
}

/**
 * A relative change against the previous period, in percent: "+12.5 %", "−3 %", "0 %".
 * @param {number | null | undefined} pct
 * @param {string} [locale]
 */
export function formatChange(pct, locale) {
  if (pct === null || pct === undefined || !Number.isFinite(pct)) return MISSING;
  const rounded = Math.abs(pct) >= 100 ? Math.round(pct) : Number(pct.toFixed(1));
  if (rounded === 0) return '0 %';
  const body = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 }).format(Math.abs(rounded));
  return `${rounded > 0 ? '+' : '−'}${body} %`;
}

/**
 * The direction of a change: "up", "down" or "flat" (for arrows and colours).
 * @param {number | null | undefined} pct
 * @returns {'up' | 'down' | 'flat' | 'none'}
 */
export function changeDirection(pct) {
  if (pct === null || pct === undefined || !Number.isFinite(pct)) return 'none';
  const rounded = Number(pct.toFixed(1));
  return rounded > 0 ? 'up' : rounded < 0 ? 'down' : 'flat';
}

/**
 * A bucket start on a chart axis or in a tooltip, in the given time zone.
 * @param {string | Date} when
 * @param {'hour' | 'day' | 'week'} unit
 * @param {string} [timeZone]
 * @param {string} [locale]
 */
export function formatBucket(when, unit, timeZone, locale) {
  const d = typeof when === 'string' ? new Date(when) : when;
  /** @type {Intl.DateTimeFormatOptions} */
  const opts =
    unit === 'hour'
      ? { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }
      : { year: 'numeric', month: 'short', day: 'numeric' };
  return new Intl.DateTimeFormat(locale, { ...opts, timeZone }).format(d);
}

/**
 * A date range for a caption: "Mar 3, 2025, 14:00 – Mar 10, 2025, 14:00".
 * @param {string | Date} start
 * @param {string | Date} end
 * @param {string} [timeZone]
 * @param {string} [locale]
 */
export function formatRange(start, end, timeZone, locale) {
  const f = new Intl.DateTimeFormat(locale, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone,
  });
  return `${f.format(new Date(start))} – ${f.format(new Date(end))}`;
}
