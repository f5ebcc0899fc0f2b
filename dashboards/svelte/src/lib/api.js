// The statistics API client: GET /api/v1/statistics/execution-times[/histogram] with a bearer
// token. Errors come back as StatisticsError with a `kind` the widgets turn into a message.

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
 */

export const STATISTICS_PATH = '/api/v1/statistics/execution-times';

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
    try {
      res = await doFetch(`${base}${path}?${queryString(q)}`, { headers, signal });
    } catch (e) {
      if (/** @type {Error} */ (e)?.name === 'AbortError') throw e;
      throw new StatisticsError('network', /** @type {Error} */ (e)?.message || 'network error');
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
