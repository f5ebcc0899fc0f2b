// Date ranges: the presets of DateRangeControl and the query parameters they become.

/** @typedef {'24h' | '7d' | '30d' | '90d' | 'custom'} RangePreset */
/**
 * @typedef {object} DateRange
 * @property {RangePreset} preset
 * @property {string} start RFC 3339 UTC, inclusive
 * @property {string} end RFC 3339 UTC, exclusive
 * @property {string} tz IANA time zone the user sees dates in (and the API buckets by)
 */

const HOUR = 3_600_000;

/** The presets, in the order the control shows them. */
export const PRESETS = /** @type {const} */ ([
  { id: '24h', label: '24 h', title: 'Last 24 hours', ms: 24 * HOUR },
  { id: '7d', label: '7 d', title: 'Last 7 days', ms: 7 * 24 * HOUR },
  { id: '30d', label: '30 d', title: 'Last 30 days', ms: 30 * 24 * HOUR },
  { id: '90d', label: '90 d', title: 'Last 90 days', ms: 90 * 24 * HOUR },
]);

/** The user's IANA time zone, from Intl; "UTC" when the runtime does not say. */
export function userTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/**
 * The range a preset means at `now`. The end is rounded up to the next whole minute, so that
 * widgets mounted a moment apart ask for the same range (and the server can cache it).
 * @param {Exclude<RangePreset, 'custom'>} preset
 * @param {Date} [now]
 * @param {string} [tz]
 * @returns {DateRange}
 */
export function presetRange(preset, now = new Date(), tz = userTimeZone()) {
  const p = PRESETS.find((x) => x.id === preset);
  if (!p) throw new Error(`unknown range preset: ${preset}`);
  const end = Math.ceil(now.getTime() / 60_000) * 60_000;
  return { preset, start: new Date(end - p.ms).toISOString(), end: new Date(end).toISOString(), tz };
}

/**
 * A custom range from two `<input type="datetime-local">` values, read in the time zone `tz`.
 * @param {string} startLocal "YYYY-MM-DDTHH:mm"
 * @param {string} endLocal
 * @param {string} [tz]
 * @returns {DateRange | null} null when either is empty or start is not before end
 */
export function customRange(startLocal, endLocal, tz = userTimeZone()) {
  if (!startLocal || !endLocal) return null;
  const start = zonedToUtc(startLocal, tz);
  const end = zonedToUtc(endLocal, tz);
  if (!start || !end || start >= end) return null;
  return { preset: 'custom', start: start.toISOString(), end: end.toISOString(), tz };
}

/**
 * The offset of `tz` from UTC at the instant `date`, in milliseconds (positive east of UTC).
 * @param {Date} date
 * @param {string} tz
 */
function tzOffset(date, tz) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(date);
  /** @type {Record<string, number>} */
  const v = {};
  for (const p of parts) if (p.type !== 'literal') v[p.type] = Number(p.value);
  const asUtc = Date.UTC(v.year, v.month - 1, v.day, v.hour % 24, v.minute, v.second);
  return asUtc - Math.floor(date.getTime() / 1000) * 1000;
}

/**
 * A wall-clock time "YYYY-MM-DDTHH:mm" in `tz`, as a Date.
 * @param {string} local
 * @param {string} tz
 */
export function zonedToUtc(local, tz) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(local);
  if (!m) return null;
  const guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  // Two passes settle the offset across a daylight-saving change.
  let t = guess - tzOffset(new Date(guess), tz);
  t = guess - tzOffset(new Date(t), tz);
  return new Date(t);
}

/**
 * A Date as the "YYYY-MM-DDTHH:mm" wall-clock value of `tz` (for datetime-local inputs).
 * @param {string | Date} when
 * @param {string} tz
 */
export function utcToZonedLocal(when, tz) {
  const d = new Date(when);
  const shifted = new Date(d.getTime() + tzOffset(d, tz));
  return shifted.toISOString().slice(0, 16);
}

/**
 * The bucket size the trend should use for a range: hours up to a week, days beyond.
 * @param {DateRange} range
 * @returns {'hour' | 'day'}
 */
export function autoGroupBy(range) {
  return new Date(range.end).getTime() - new Date(range.start).getTime() <= 7 * 24 * HOUR ? 'hour' : 'day';
}
