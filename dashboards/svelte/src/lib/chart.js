// Scales and ticks for the hand-drawn SVG charts. Pure functions, unit-tested.

const MS_STEPS = [
  1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500,
  1e3, 2e3, 5e3, 10e3, 15e3, 30e3,
  60e3, 120e3, 300e3, 600e3, 900e3, 1800e3,
  3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3,
];

/**
 * A 1-2-5 step near `raw`.
 * @param {number} raw
 */
function niceStep(raw) {
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * pow;
}

/**
 * Ticks from 0 to at least `max`, about `count` of them, on steps that read well.
 * @param {number} max
 * @param {number} [count]
 * @param {'duration' | 'count'} [kind] durations step by 1, 2, 5, 15, 30 s, 1, 2, 5 min, ...
 * @returns {number[]}
 */
export function niceTicks(max, count = 5, kind = 'count') {
  if (!Number.isFinite(max) || max <= 0) return [0, 1];
  const raw = max / count;
  let step;
  if (kind === 'duration' && raw >= 1 && raw <= MS_STEPS[MS_STEPS.length - 1]) {
    step = MS_STEPS.find((s) => s >= raw) ?? niceStep(raw);
  } else {
    step = niceStep(raw);
    if (kind === 'count') step = Math.max(1, step);
  }
  const ticks = [];
  for (let v = 0; v < max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return ticks;
}

/**
 * A linear scale from [d0, d1] to [r0, r1].
 * @param {number} d0
 * @param {number} d1
 * @param {number} r0
 * @param {number} r1
 */
export function linear(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (/** @type {number} */ v) => r0 + (v - d0) * k;
}

/**
 * An SVG path through points, broken where a value is missing.
 * @param {(number | null)[]} ys values (null = gap)
 * @param {(i: number) => number} x
 * @param {(v: number) => number} y
 */
export function linePath(ys, x, y) {
  let d = '';
  let pen = false;
  ys.forEach((v, i) => {
    if (v === null || v === undefined || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  });
  return d;
}

/**
 * Which of `n` points get an axis label: at most `max`, evenly spaced, always the first.
 * @param {number} n
 * @param {number} max
 */
export function labelIndexes(n, max) {
  if (n <= 0) return [];
  const every = Math.max(1, Math.ceil(n / Math.max(1, max)));
  const out = [];
  for (let i = 0; i < n; i += every) out.push(i);
  return out;
}

/**
 * The index of the point nearest to `px` when n points are spread over [x0, x1].
 * @param {number} px
 * @param {number} n
 * @param {number} x0
 * @param {number} x1
 */
export function nearestIndex(px, n, x0, x1) {
  if (n <= 1) return 0;
  const i = Math.round(((px - x0) / (x1 - x0)) * (n - 1));
  return Math.min(n - 1, Math.max(0, i));
}
