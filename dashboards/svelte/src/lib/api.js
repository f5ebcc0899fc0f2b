// The statistics API client: GET /api/v1/statistics/execution-times[/histogram], queue-times
// and step-times with a bearer token. Errors come back as StatisticsError with a `kind` the widgets turn into a message.

/**
 * @typedef {object} StatisticsGroup
 * @property {string | null} workflow_id
 * @property {string | null} [workflow_name] with group_by=workflow: the name runs were reported with
 * @property {string | null} status
 * @property {string | null} bucket_start
 * @property {number} count
 * @property {number | null} avg
 * @property {number | null} min
 * @property {number | null} max
 * @property {number | null} median
 * @property {number | null} p95
 * @property {number | null} p99
 * @property {Record<string, number | null>} [percentiles]
 */
/**
 * @typedef {object} ExecutionTimes
 * @property {object} filters
 * @property {'ms'} unit
 * @property {{method: 'exact' | 'sketch', max_relative_error: number}} [accuracy]
 * @property {StatisticsGroup[]} groups
 * @property {{start: string, end: string, groups: StatisticsGroup[]} | null} [previous]
 * @property {Record<string, number | null> | null} [change_percent]
 * @property {string | null} [next_cursor]
 */
/**
 * @typedef {object} Histogram
 * @property {object} filters
 * @property {'ms'} unit
 * @property {{lower: number, upper: number | null, count: number}[]} buckets
 */
/**
 * @typedef {object} StatisticsQuery
 * @property {string} start RFC 3339
 * @property {string} end RFC 3339
 * @property {string} [tz]
 * @property {string | string[] | null} [workflowId]
 * @property {string | string[] | null} [status]
 * @property {'none' | 'workflow' | 'status' | 'hour' | 'day' | 'week'} [groupBy]
 * @property {boolean} [compare] ask for the previous period of the same length
 * @property {number[]} [percentiles]
 * @property {boolean} [exact]
 * @property {number} [limit]
 * @property {string | null} [cursor]
 * @property {'queue_wait' | 'start_wait'} [measure] queue-times only
 */
/**
 * @typedef {object} StepTimes
 * @property {string} step_id
 * @property {string} step_type
 * @property {number} count
 * @property {number} failed rows whose last attempt failed
 * @property {number} avg_ms
 * @property {number} median_ms
 * @property {number} p95_ms
 * @property {number} p99_ms
 * @property {number} total_ms
 * @property {number} failure_ratio failed / count
 * @property {number} mean_attempts
 * @property {number | null} share the step's total / every step's
 * @property {number | null} median_share the step's median / the sum of every step's median
 */
/**
 * @typedef {object} StepBreakdown
 * @property {object} filters
 * @property {'ms'} unit
 * @property {{method: 'exact' | 'sketch', max_relative_error: number}} [accuracy]
 * @property {string | null} workflow_name
 * @property {number} count
 * @property {number} total_ms
 * @property {StepTimes[]} steps by share, largest first
 */

export const STATISTICS_PATH = '/api/v1/statistics/execution-times';
export const QUEUE_PATH = '/api/v1/statistics/queue-times';
export const STEPS_PATH = '/api/v1/statistics/step-times';

/** @typedef {'unauthorized' | 'forbidden' | 'bad_request' | 'unavailable' | 'server' | 'network' | 'no_token'} ErrorKind */

export class StatisticsError extends Error {
  /**
   * @param {ErrorKind} kind
   * @param {string} message
   * @param {number} [status] the HTTP status, when there was a response
   * @param {string} [code] the API's `error` field
   */
  constructor(kind, message, status, code) {
    super(message);
    this.name = 'StatisticsError';
    this.kind = kind;
    this.status = status;
    this.code = code;
  }
}

/**
 * The query string of a statistics request, in a stable order.
 * @param {StatisticsQuery} q
 */
export function queryString(q) {
  const p = new URLSearchParams();
  const list = (/** @type {string | string[] | null | undefined} */ v) => (Array.isArray(v) ? v.join(',') : v);
  if (q.workflowId && list(q.workflowId)) p.set('workflow_id', /** @type {string} */ (list(q.workflowId)));
  p.set('start_date', q.start);
  p.set('end_date', q.end);
  if (q.tz) p.set('tz', q.tz);
  if (q.status && list(q.status)) p.set('status', /** @type {string} */ (list(q.status)));
  if (q.percentiles?.length) p.set('percentiles', q.percentiles.join(','));
  if (q.groupBy) p.set('group_by', q.groupBy);
  if (q.compare) p.set('compare', 'previous');
  if (q.exact !== undefined) p.set('exact', String(q.exact));
  if (q.limit) p.set('limit', String(q.limit));
  if (q.cursor) p.set('cursor', q.cursor);
  if (q.measure) p.set('measure', q.measure);
  return p.toString();
}

/**
 * @param {Response} res
 * @returns {Promise<StatisticsError>}
 */
async function errorFrom(res) {
  /** @type {{error?: string, message?: string}} */
  let body = {};
  try {
    body = await res.json();
  } catch {
    // Not our JSON (a proxy's HTML page, say): the status says enough.
  }
  const message = body.message || res.statusText || `HTTP ${res.status}`;
  const kind =
    res.status === 401 ? 'unauthorized'
    : res.status === 403 ? 'forbidden'
    : res.status === 503 ? 'unavailable'
    : res.status >= 500 ? 'server'
    : 'bad_request';
  return new StatisticsError(kind, message, res.status, body.error);
}

const MAX_RETRIES_429 = 4;

/**
 * How long a 429 asks to wait: Retry-After in seconds, 1 s when absent, at most 5 s, with a
 * little jitter so refused widgets do not come back all at once.
 * @param {Response} res
 */
function retryAfterMs(res) {
  const seconds = Number(res.headers.get('Retry-After'));
  const base = Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 5) * 1000 : 1000;
  return base * (0.5 + Math.random() * 0.5);
}

/**
 * Resolves after ms, or rejects with an AbortError when signal aborts first.
 * @param {number} ms
 * @param {AbortSignal} [signal]
 */
function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const abort = () => {
      clearTimeout(timer);
      reject(new DOMException('aborted', 'AbortError'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', abort);
      resolve(undefined);
    }, ms);
    if (signal?.aborted) abort();
    else signal?.addEventListener('abort', abort, { once: true });
  });
}

/**
 * A client bound to one API base and token getter.
 * @param {object} options
 * @param {string | URL} options.apiBase the daemon's origin (or a path prefix), e.g. "https://stats.example.com"
 * @param {() => Promise<string | null | undefined> | string | null | undefined} options.getToken the user's JWT
 * @param {typeof fetch} [options.fetch] SvelteKit's `fetch`, or a test double
 */
export function createStatisticsClient({ apiBase, getToken, fetch: fetchImpl }) {
  const base = String(apiBase ?? '').replace(/\/+$/, '');

  /**
   * @param {string} path
   * @param {StatisticsQuery} q
   * @param {AbortSignal} [signal]
   */
  async function get(path, q, signal) {
    const token = await getToken?.();
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const doFetch = fetchImpl ?? globalThis.fetch;
    /** @type {Response} */
    let res;
    // The API lets one caller run only a few requests at once (429 with Retry-After); a page of
    // widgets asks for more, so a refused one waits as told and asks again.
    for (let attempt = 0; ; attempt++) {
      try {
        res = await doFetch(`${base}${path}?${queryString(q)}`, { headers, signal });
      } catch (e) {
        if (/** @type {Error} */ (e)?.name === 'AbortError') throw e;
        throw new StatisticsError('network', /** @type {Error} */ (e)?.message || 'network error');
      }
      if (res.status !== 429 || attempt >= MAX_RETRIES_429) break;
      await pause(retryAfterMs(res), signal);
    }
    if (!res.ok) throw await errorFrom(res);
    try {
      return await res.json();
    } catch {
      throw new StatisticsError('server', 'the statistics service sent a response that is not JSON', res.status);
    }
  }

  return {
    /**
     * One page of execution-time statistics.
     * @param {StatisticsQuery} q
     * @param {AbortSignal} [signal]
     * @returns {Promise<ExecutionTimes>}
     */
    executionTimes(q, signal) {
      return get(STATISTICS_PATH, q, signal);
    },

    /**
     * Every page of a grouped query, following next_cursor (up to maxPages).
     * @param {StatisticsQuery} q
     * @param {AbortSignal} [signal]
     * @param {number} [maxPages]
     * @returns {Promise<ExecutionTimes>}
     */
    async executionTimesAll(q, signal, maxPages = 20) {
      /** @type {ExecutionTimes} */
      const first = await get(STATISTICS_PATH, q, signal);
      const groups = [...(first.groups ?? [])];
      let cursor = first.next_cursor;
      for (let i = 1; cursor && i < maxPages; i++) {
        /** @type {ExecutionTimes} */
        const page = await get(STATISTICS_PATH, { ...q, cursor }, signal);
        groups.push(...(page.groups ?? []));
        cursor = page.next_cursor;
      }
      return { ...first, groups, next_cursor: cursor ?? null };
    },

    /**
     * The distribution of durations.
     * @param {StatisticsQuery} q
     * @param {AbortSignal} [signal]
     * @returns {Promise<Histogram>}
     */
    histogram(q, signal) {
      return get(`${STATISTICS_PATH}/histogram`, q, signal);
    },

    /**
     * Queue-wait statistics of the same shape as executionTimes (q.measure: queue_wait or
     * start_wait).
     * @param {StatisticsQuery} q
     * @param {AbortSignal} [signal]
     * @returns {Promise<ExecutionTimes>}
     */
    queueTimes(q, signal) {
      return get(QUEUE_PATH, q, signal);
    },

    /**
     * One workflow's steps (q.workflowId; q.status is the step's: succeeded or failed).
     * @param {StatisticsQuery} q
     * @param {AbortSignal} [signal]
     * @returns {Promise<StepBreakdown>}
     */
    stepTimes(q, signal) {
      const { start, end, tz, workflowId, status, exact } = q;
      return get(STEPS_PATH, { start, end, tz, workflowId, status, exact }, signal);
    },
  };
}

/**
 * What to tell a person about an error, as {title, detail}.
 * @param {unknown} error
 */
export function describeError(error) {
  const e = /** @type {StatisticsError} */ (error);
  switch (e?.kind) {
    case 'unauthorized':
      return { title: 'Not signed in', detail: 'Your session has expired or the token is not valid (401). Sign in again.' };
    case 'no_token':
      return { title: 'Not signed in', detail: 'No token: sign in to see statistics.' };
    case 'forbidden':
      return { title: 'No access', detail: 'You do not have access to these workflows (403).' };
    case 'network':
      return { title: 'Cannot reach the statistics service', detail: 'Check your connection, then try again.' };
    case 'unavailable':
      return { title: 'Statistics are unavailable', detail: `The statistics service is busy or its database is down (503): ${e.message}. Try again shortly.` };
    case 'server':
      return { title: 'Statistics failed to load', detail: `The statistics service had an error (${e.status ?? 'bad response'}). Try again shortly.` };
    case 'bad_request':
      return { title: 'The request was refused', detail: `${e.message} (${e.status}).` };
    default:
      return { title: 'Statistics failed to load', detail: String(/** @type {Error} */ (error)?.message ?? error) };
  }
}
