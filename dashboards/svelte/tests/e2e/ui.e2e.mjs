#!/usr/bin/env node
// End-to-end test of the /ui page in a real Chromium (playwright-core driving the system's
// chromium). Runs against anything that serves the page and the statistics API on one origin:
// the real meshhook-stats with seeded Postgres, or tests/e2e/mock-server.mjs.
//
//   MESHHOOK_UI_URL=http://127.0.0.1:9470/ui/  the page
//   MESHHOOK_UI_TOKEN=<jwt>                    a token the API accepts
//   MESHHOOK_SCREENSHOT_DIR=<dir>              optional: save ui-light.png and ui-dark.png there
//   MESHHOOK_CHROMIUM=/usr/bin/chromium        optional: the browser binary
//
// Prints one "ok"/"not ok" line per check (TAP) and exits 1 when any fails, 77 (skip) when there
// is no browser.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { formatChange, formatCount, formatDuration } from '../../src/lib/format.js';

const uiUrl = process.env.MESHHOOK_UI_URL;
const token = process.env.MESHHOOK_UI_TOKEN;
const shotDir = process.env.MESHHOOK_SCREENSHOT_DIR;
const executablePath = process.env.MESHHOOK_CHROMIUM ?? '/usr/bin/chromium';
const LOCALE = 'en-US';
const TIMEOUT = Number(process.env.MESHHOOK_E2E_TIMEOUT_MS ?? 15000);

if (!uiUrl || !token) {
  console.error('ui.e2e: set MESHHOOK_UI_URL (the /ui/ page) and MESHHOOK_UI_TOKEN (a token the API accepts)');
  process.exit(2);
}
if (!existsSync(executablePath)) {
  console.log(`1..0 # SKIP no browser at ${executablePath} (set MESHHOOK_CHROMIUM)`);
  process.exit(77);
}

const WIDGETS = ['summary', 'trend', 'histogram', 'workflow-table'];
const STATS_PATH = '/api/v1/statistics/execution-times';
const QUEUE_PATH = '/api/v1/statistics/queue-times';
const STEPS_PATH = '/api/v1/statistics/step-times';

// ---------------------------------------------------------------------------------------------
// A tiny runner: each check gets a fresh browser context (fresh storage, so tokens do not leak).

/** @type {{name: string, fn: (ctx: import('playwright-core').BrowserContext) => Promise<void>, options?: object}[]} */
const checks = [];
const check = (name, fn, options) => checks.push({ name, fn, options });

// ---------------------------------------------------------------------------------------------
// Helpers.

/** GET a statistics URL (as the page asked for it) with the token, from Node. */
async function api(url, bearer = token) {
  const res = await fetch(url, { headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json' } });
  const body = await res.json().catch(() => null);
  return { status: res.status, body };
}

/** Every page of a grouped statistics URL, following next_cursor as the widgets do. */
async function apiAll(url) {
  const first = await api(url);
  assert.equal(first.status, 200, `GET ${url} answered ${first.status}`);
  const groups = [...first.body.groups];
  let cursor = first.body.next_cursor;
  while (cursor) {
    const u = new URL(url);
    u.searchParams.set('cursor', cursor);
    const next = await api(u.toString());
    assert.equal(next.status, 200);
    groups.push(...next.body.groups);
    cursor = next.body.next_cursor;
  }
  return { ...first.body, groups };
}

/**
 * Opens the page and records the statistics requests it makes.
 * @param {import('playwright-core').BrowserContext} ctx
 * @param {string | null} withToken
 */
async function open(ctx, withToken = token) {
  const page = await ctx.newPage();
  /** @type {{url: string, status: number}[]} */
  const requests = [];
  page.on('response', (r) => {
    if (r.url().includes('/api/v1/statistics/')) requests.push({ url: r.url(), status: r.status() });
  });
  const u = new URL(uiUrl);
  if (withToken) u.searchParams.set('token', withToken);
  await page.goto(u.toString());
  return { page, requests };
}

/** Waits until every widget has finished loading (ready, empty or error). */
async function settled(page) {
  await page.waitForFunction(
    (names) =>
      names.every((n) => {
        const el = document.querySelector(`[data-widget="${n}"]`);
        return el && el.getAttribute('data-state') !== 'loading';
      }),
    WIDGETS,
    { timeout: TIMEOUT },
  );
}

/** The last request the page made that matches `pred`. */
function lastRequest(requests, pred) {
  const found = requests.filter((r) => pred(new URL(r.url))).at(-1);
  assert.ok(found, 'the page made no such request');
  return found.url;
}
const isSummary = (u) => u.pathname.endsWith(STATS_PATH) && u.searchParams.get('group_by') === 'none';
const isTrend = (u) => u.pathname.endsWith(STATS_PATH) && ['hour', 'day'].includes(u.searchParams.get('group_by') ?? '');
const isTable = (u) => u.pathname.endsWith(STATS_PATH) && u.searchParams.get('group_by') === 'workflow' && !u.searchParams.get('cursor');
const isHistogram = (u) => u.pathname.endsWith(`${STATS_PATH}/histogram`);

const isQueue = (u) => u.pathname.endsWith(QUEUE_PATH) && u.searchParams.get('group_by') === 'none';
const isSteps = (u) => u.pathname.endsWith(STEPS_PATH);

/** Waits until a widget has finished loading. */
async function widgetSettled(page, name) {
  await page.waitForFunction((n) => {
    const el = document.querySelector(`[data-widget="${n}"]`);
    return el && el.getAttribute('data-state') !== 'loading';
  }, name, { timeout: TIMEOUT });
}

/** The summary's queue wait shows the median and p95 of queue-times for the same filters. */
async function expectQueueMatches(page, requests) {
  const summary = new URL(lastRequest(requests, isSummary));
  const url = new URL(lastRequest(requests, isQueue));
  for (const k of ['workflow_id', 'start_date', 'end_date', 'tz', 'status']) {
    assert.equal(url.searchParams.get(k), summary.searchParams.get(k), `queue-times asks for the summary's ${k}`);
  }
  const { status, body } = await api(url.toString());
  assert.equal(status, 200);
  const g = body.groups[0];
  await page.waitForFunction(() => document.querySelector('[data-queue-state]')?.getAttribute('data-queue-state') !== 'loading');
  for (const key of ['median', 'p95']) {
    const stat = page.locator(`[data-widget="summary"] [data-stat="queue_${key}"]`);
    assert.equal(num(await stat.getAttribute('data-value')), g.count ? g[key] : null, `queue ${key}: raw value`);
    assert.equal((await stat.locator('.value').textContent())?.trim(), formatDuration(g.count ? g[key] : null, LOCALE), `queue ${key}: shown`);
  }
  return body;
}

/** The step breakdown shows step-times' steps in its order, and the bar their median shares. */
async function expectStepsMatch(page, requests, workflowId) {
  await widgetSettled(page, 'steps');
  const url = new URL(lastRequest(requests, isSteps));
  assert.equal(url.searchParams.get('workflow_id'), workflowId);
  const { status, body } = await api(url.toString());
  assert.equal(status, 200);
  if (!body.steps.length) {
    assert.equal(await page.getAttribute('[data-widget="steps"]', 'data-state'), 'empty');
    return body;
  }
  assert.equal(await page.getAttribute('[data-widget="steps"]', 'data-state'), 'ready');
  const rows = page.locator('[data-widget="steps"] tbody tr');
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-step-id'))), body.steps.map((s) => s.step_id), 'one row per step, by share');
  for (const s of body.steps) {
    const row = page.locator(`[data-widget="steps"] tr[data-step-id="${s.step_id}"]`);
    assert.equal((await row.locator('td[data-column="type"]').textContent())?.trim(), s.step_type || '—');
    for (const [column, key] of [['count', 'count'], ['median', 'median_ms'], ['p95', 'p95_ms'], ['failure_ratio', 'failure_ratio'], ['mean_attempts', 'mean_attempts']]) {
      assert.equal(num(await row.locator(`td[data-column="${column}"]`).getAttribute('data-value')), s[key], `step ${s.step_id} ${key}`);
    }
    assert.equal((await row.locator('td[data-column="median"]').textContent())?.trim(), formatDuration(s.median_ms, LOCALE));
    assert.equal((await row.locator('td[data-column="p95"]').textContent())?.trim(), formatDuration(s.p95_ms, LOCALE));
    assert.equal(await row.locator('.mark').count(), s.failed > 0 ? 1 : 0, `step ${s.step_id}: failures marked`);
    const segment = page.locator(`[data-testid="step-bar"] [data-step="${s.step_id}"]`);
    if (s.median_share) {
      assert.equal(num(await segment.getAttribute('data-share')), s.median_share, `bar ${s.step_id}`);
      assert.equal(await segment.evaluate((el) => el.classList.contains('failed')), s.failed > 0);
    } else {
      assert.equal(await segment.count(), 0);
    }
  }
  // The segments fill the bar in proportion to the shares.
  const bar = await page.locator('[data-testid="step-bar"]').boundingBox();
  const widths = await page.locator('[data-testid="step-bar"] .segment').evaluateAll((els) => els.map((e) => e.getBoundingClientRect().width));
  const shares = body.steps.filter((s) => s.median_share).map((s) => s.median_share);
  assert.ok(bar && bar.width > 0);
  for (const [i, w] of widths.entries()) assert.ok(Math.abs(w / (bar.width - 2) - shares[i]) < 0.02, `segment ${i} width ${w} of ${bar.width}`);
  return body;
}

const fmt = (key, v) => (key === 'count' ? formatCount(v, LOCALE) : formatDuration(v, LOCALE));
const num = (s) => (s === '' || s === null ? null : Number(s));

/** The summary shows the API's numbers, formatted; returns the API body. */
async function expectSummaryMatches(page, requests) {
  const url = lastRequest(requests, isSummary);
  const { status, body } = await api(url);
  assert.equal(status, 200);
  const state = await page.getAttribute('[data-widget="summary"]', 'data-state');
  const g = body.groups[0];
  if (!g || !g.count) {
    assert.equal(state, 'empty', 'the API has no runs, so the summary should say so');
    return body;
  }
  assert.equal(state, 'ready');
  for (const key of ['count', 'avg', 'median', 'p95', 'p99', 'min', 'max']) {
    const stat = page.locator(`[data-widget="summary"] [data-stat="${key}"]`);
    assert.equal(num(await stat.getAttribute('data-value')), g[key], `summary ${key}: raw value`);
    assert.equal((await stat.locator('.value').textContent())?.trim(), fmt(key, g[key]), `summary ${key}: shown`);
    if (body.change_percent && key in body.change_percent) {
      const change = stat.locator('[data-change]');
      assert.equal(num(await change.getAttribute('data-change')), body.change_percent[key], `summary ${key}: change`);
      assert.ok((await change.textContent())?.includes(formatChange(body.change_percent[key], LOCALE)));
    }
  }
  return body;
}

/** The table has one row per workflow of the API, with its numbers. */
async function expectTableMatches(page, requests) {
  const body = await apiAll(lastRequest(requests, isTable));
  const groups = body.groups.filter((g) => g.workflow_id);
  if (!groups.length) {
    assert.equal(await page.getAttribute('[data-widget="workflow-table"]', 'data-state'), 'empty');
    return groups;
  }
  assert.equal(await page.locator('[data-widget="workflow-table"] tbody tr').count(), groups.length, 'one row per workflow');
  for (const g of groups) {
    const row = page.locator(`[data-widget="workflow-table"] tr[data-workflow-id="${g.workflow_id}"]`);
    for (const key of ['count', 'avg', 'median', 'p95', 'p99', 'min', 'max']) {
      const cell = row.locator(`td[data-column="${key}"]`);
      assert.equal(num(await cell.getAttribute('data-value')), g[key], `table ${g.workflow_id} ${key}`);
      assert.equal((await cell.textContent())?.trim(), fmt(key, g[key]));
    }
  }
  return groups;
}

/** The histogram's text alternative lists the API's buckets. */
async function expectHistogramMatches(page, requests) {
  const { status, body } = await api(lastRequest(requests, isHistogram));
  assert.equal(status, 200);
  const buckets = [...body.buckets].sort((a, b) => a.lower - b.lower);
  if (!buckets.some((b) => b.count > 0)) {
    assert.equal(await page.getAttribute('[data-widget="histogram"]', 'data-state'), 'empty');
    return;
  }
  const shown = await page.$$eval('[data-widget="histogram"] tbody tr', (rows) =>
    rows.map((r) => ({ lower: Number(r.getAttribute('data-lower')), count: Number(r.getAttribute('data-count')) })),
  );
  assert.deepEqual(shown, buckets.map((b) => ({ lower: b.lower, count: b.count })));
  const bars = await page.locator('[data-widget="histogram"] svg rect.bar').count();
  assert.equal(bars, buckets.length, 'one bar per bucket');
}

/** The trend's text alternative lists the API's buckets, p95 included. */
async function expectTrendMatches(page, requests) {
  const url = lastRequest(requests, isTrend);
  const body = await apiAll(url);
  const points = body.groups
    .filter((g) => g.bucket_start)
    .sort((a, b) => Date.parse(a.bucket_start) - Date.parse(b.bucket_start));
  if (!points.some((p) => p.count > 0)) {
    assert.equal(await page.getAttribute('[data-widget="trend"]', 'data-state'), 'empty');
    return { groupBy: new URL(url).searchParams.get('group_by'), path: '' };
  }
  const rows = await page.$$eval('[data-widget="trend"] tbody tr', (trs) =>
    trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim())),
  );
  assert.equal(rows.length, points.length, 'one point per bucket');
  rows.forEach((cells, i) => {
    assert.equal(cells[0], formatCount(points[i].count, LOCALE), `trend point ${i}: runs`);
    assert.equal(cells[2], formatDuration(points[i].p95, LOCALE), `trend point ${i}: p95`);
  });
  const path = await page.getAttribute('[data-widget="trend"] path[data-series="p95"]', 'd');
  return { groupBy: new URL(url).searchParams.get('group_by'), path };
}

/** @param {import('playwright-core').Locator} cells */
async function values(cells) {
  return (await cells.evaluateAll((tds) => tds.map((td) => td.getAttribute('data-value')))).map(num);
}

/** @param {(number|null)[]} xs */
function isSorted(xs, direction) {
  const present = xs.filter((x) => x !== null);
  // Missing values sort last in both directions.
  assert.deepEqual(xs.slice(0, present.length), present, 'missing values come last');
  return present.every((x, i) => i === 0 || (direction === 'ascending' ? present[i - 1] <= x : present[i - 1] >= x));
}

// ---------------------------------------------------------------------------------------------
// The checks.

check('the page shows the numbers the API returns', async (ctx) => {
  const { page, requests } = await open(ctx);
  await settled(page);
  for (const w of WIDGETS) {
    assert.notEqual(await page.getAttribute(`[data-widget="${w}"]`, 'data-state'), 'error', `${w} failed to load`);
  }
  // Every request carried the user's time zone and a range.
  for (const r of requests) {
    const u = new URL(r.url);
    assert.ok(u.searchParams.get('start_date') && u.searchParams.get('end_date') && u.searchParams.get('tz'), r.url);
  }
  await expectSummaryMatches(page, requests);
  await expectTableMatches(page, requests);
  await expectHistogramMatches(page, requests);
  await expectTrendMatches(page, requests);
});

check('changing the range refetches and redraws', async (ctx) => {
  const { page, requests } = await open(ctx);
  await settled(page);
  const before = new URL(lastRequest(requests, isSummary));
  const trendBefore = await expectTrendMatches(page, requests);
  const seen = requests.length;

  await page.getByRole('radio', { name: '30 d' }).check();
  await page.waitForFunction(() => document.querySelector('[data-widget="date-range"]')?.getAttribute('data-preset') === '30d');
  await settled(page);
  const fresh = requests.slice(seen);
  assert.ok(fresh.some((r) => isSummary(new URL(r.url))), 'the summary refetched');
  assert.ok(fresh.some((r) => isTable(new URL(r.url))), 'the table refetched');
  assert.ok(fresh.some((r) => isHistogram(new URL(r.url))), 'the histogram refetched');
  const after = new URL(lastRequest(requests, isSummary));
  const days = (u) => (Date.parse(u.searchParams.get('end_date')) - Date.parse(u.searchParams.get('start_date'))) / 86_400_000;
  assert.equal(days(before), 7);
  assert.equal(days(after), 30);

  await expectSummaryMatches(page, requests);
  await expectTableMatches(page, requests);
  await expectHistogramMatches(page, requests);
  const trendAfter = await expectTrendMatches(page, requests);
  assert.equal(trendBefore.groupBy, 'hour', '7 days are drawn per hour');
  assert.equal(trendAfter.groupBy, 'day', '30 days are drawn per day');
  assert.notEqual(trendAfter.path, trendBefore.path, 'the trend redrew');

  // The presets work by keyboard too: arrow keys move between the radio buttons.
  const seen2 = requests.length;
  await page.getByRole('radio', { name: '30 d' }).focus();
  await page.keyboard.press('ArrowLeft');
  await page.waitForFunction(() => document.querySelector('[data-widget="date-range"]')?.getAttribute('data-preset') === '7d');
  await settled(page);
  assert.ok(requests.slice(seen2).some((r) => isSummary(new URL(r.url))), 'the keyboard change refetched');
  await expectSummaryMatches(page, requests);
});

check('the summary shows the queue wait beside the run time', async (ctx) => {
  const { page, requests } = await open(ctx);
  await settled(page);
  await expectQueueMatches(page, requests);
  assert.equal(await page.locator('[data-widget="steps"]').count(), 0, 'no step breakdown without a workflow');
});

check('a bad token shows the error state', async (ctx) => {
  const bad = 'not-a-valid-token';
  const probe = await api(new URL(`${STATS_PATH}?start_date=2025-01-01T00:00:00Z&end_date=2025-01-02T00:00:00Z`, uiUrl).toString(), bad);
  assert.equal(probe.status, 401, 'the API refuses the bad token');
  const { page, requests } = await open(ctx, bad);
  await settled(page);
  for (const w of WIDGETS) {
    assert.equal(await page.getAttribute(`[data-widget="${w}"]`, 'data-state'), 'error', `${w} shows the error`);
    const alert = page.locator(`[data-widget="${w}"] [role="alert"]`);
    assert.equal(await alert.getAttribute('data-error-kind'), 'unauthorized');
    assert.match((await alert.textContent()) ?? '', /401/);
  }
  assert.ok(requests.length > 0 && requests.every((r) => r.status === 401), 'every request was refused');
  // The page offers to change the token.
  await page.getByRole('button', { name: 'Change token' }).click();
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Show statistics' }).click();
  await settled(page);
  assert.notEqual(await page.getAttribute('[data-widget="summary"]', 'data-state'), 'error', 'a good token recovers');
});

check('without a token the page asks for one', async (ctx) => {
  const { page, requests } = await open(ctx, null);
  await page.getByLabel('Access token').waitFor({ timeout: TIMEOUT });
  assert.equal(requests.length, 0, 'no request without a token');
  await page.getByLabel('Access token').fill(token);
  await page.keyboard.press('Enter');
  await settled(page);
  await expectSummaryMatches(page, requests);
});

check('the table sorts', async (ctx) => {
  const { page } = await open(ctx);
  await settled(page);
  const table = page.locator('[data-widget="workflow-table"]');
  if ((await table.getAttribute('data-state')) !== 'ready') throw new Error('the table has no rows to sort');
  for (const key of ['count', 'p99', 'median']) {
    const header = table.locator(`th[data-column="${key}"]`);
    await header.locator('button').click();
    assert.equal(await header.getAttribute('aria-sort'), 'descending', `${key}: first click sorts descending`);
    assert.ok(isSorted(await values(table.locator(`tbody td[data-column="${key}"]`)), 'descending'), `${key} descending`);
    await header.locator('button').click();
    assert.equal(await header.getAttribute('aria-sort'), 'ascending', `${key}: second click sorts ascending`);
    assert.ok(isSorted(await values(table.locator(`tbody td[data-column="${key}"]`)), 'ascending'), `${key} ascending`);
    assert.equal(await table.locator('th[aria-sort]').count(), 1, 'one column is sorted');
  }
  // By keyboard: focus the workflow heading and press Enter.
  await table.locator('th[data-column="workflow"] button').focus();
  await page.keyboard.press('Enter');
  assert.equal(await table.locator('th[data-column="workflow"]').getAttribute('aria-sort'), 'ascending');
  const names = await table.locator('tbody th').allTextContents();
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  assert.deepEqual(names, [...names].sort(collator.compare), 'workflows A to Z');
});

check('picking a workflow in the table focuses the page on it', async (ctx) => {
  const { page, requests } = await open(ctx);
  await settled(page);
  const first = page.locator('[data-widget="workflow-table"] tbody tr').first();
  const id = await first.getAttribute('data-workflow-id');
  assert.ok(id, 'the table has a workflow');
  const seen = requests.length;
  await first.locator('a').click();
  await page.waitForFunction((wf) => location.hash === `#workflow=${wf}`, id);
  await page.waitForFunction(() => !!document.querySelector('[data-testid="selected-workflow"]'));
  await settled(page);
  const summaryUrl = new URL(lastRequest(requests.slice(seen), isSummary));
  assert.equal(summaryUrl.searchParams.get('workflow_id'), id);
  assert.equal(await page.locator('[data-testid="selected-workflow"]').textContent(), id);
  assert.equal(await page.locator(`tr[data-workflow-id="${id}"] a`).getAttribute('aria-current'), 'true');
  await expectSummaryMatches(page, requests);
  await expectQueueMatches(page, requests.slice(seen));
  await expectStepsMatch(page, requests.slice(seen), id);
  if (shotDir) {
    mkdirSync(shotDir, { recursive: true });
    await page.locator('[data-widget="steps"]').screenshot({ path: resolve(shotDir, 'ui-steps.png') });
  }
});

for (const scheme of /** @type {const} */ (['light', 'dark'])) {
  check(
    `the ${scheme} theme${shotDir ? ' (screenshot)' : ''}`,
    async (ctx) => {
      const { page } = await open(ctx);
      await settled(page);
      const html = page.locator('html');
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const luminance = bg.match(/\d+/g)?.slice(0, 3).map(Number).reduce((a, b) => a + b, 0) ?? 0;
      assert.ok(scheme === 'dark' ? luminance < 200 : luminance > 500, `${scheme} background (${bg})`);
      // A tooltip on the trend, for the screenshot and to check hovering works.
      const trend = page.locator('[data-widget="trend"] .plot svg');
      if (await trend.count()) {
        const box = await trend.boundingBox();
        if (box) await page.mouse.move(box.x + box.width * 0.62, box.y + box.height / 2);
        await page.locator('[data-widget="trend"] [role="tooltip"]').waitFor({ timeout: TIMEOUT });
      }
      if (shotDir) {
        mkdirSync(shotDir, { recursive: true });
        await page.screenshot({ path: resolve(shotDir, `ui-${scheme}.png`), fullPage: true });
      }
      // The toggle flips the theme against the system's and remembers it.
      const toggle = page.getByTestId('theme-toggle');
      assert.equal(await toggle.getAttribute('aria-pressed'), String(scheme === 'dark'));
      await toggle.click();
      assert.equal(await html.getAttribute('data-theme'), scheme === 'dark' ? 'light' : 'dark');
      await page.reload();
      assert.equal(await html.getAttribute('data-theme'), scheme === 'dark' ? 'light' : 'dark', 'the choice survives a reload');
    },
    { colorScheme: scheme },
  );
}

// ---------------------------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Playwright gives every launch a fresh, temporary --user-data-dir of its own.
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
  ],
});
let failed = 0;
console.log(`1..${checks.length}`);
try {
  for (const [i, c] of checks.entries()) {
    const ctx = await browser.newContext({
      locale: LOCALE,
      viewport: { width: 1280, height: 900 },
      deviceScaleFactor: 1,
      ...c.options,
    });
    ctx.setDefaultTimeout(TIMEOUT);
    /** @type {string[]} */
    const pageErrors = [];
    ctx.on('page', (p) => p.on('pageerror', (e) => pageErrors.push(String(e))));
    const t0 = Date.now();
    try {
      await c.fn(ctx);
      assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
      console.log(`ok ${i + 1} - ${c.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`not ok ${i + 1} - ${c.name}`);
      console.log(`  # ${String(e?.stack ?? e).split('\n').slice(0, 6).join('\n  # ')}`);
    } finally {
      await ctx.close();
    }
  }
} finally {
  await browser.close();
}
console.log(failed ? `# ${failed} of ${checks.length} failed` : `# all ${checks.length} passed`);
process.exit(failed ? 1 : 0);
