// Where the standalone page gets its settings: the token (query parameter, then localStorage),
// the selected workflow (the URL hash) and the theme.

const TOKEN_KEY = 'meshhook-stats.token';
const THEME_KEY = 'meshhook-stats.theme';

/** @param {string} key */
function read(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

/**
 * @param {string} key
 * @param {string | null} value
 */
function write(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // Private mode: the setting lasts for this page only.
  }
}

/**
 * The token from `?token=` (then stored and removed from the address bar, so it is not left in
 * history or shared by copying the URL), else the stored one.
 * @returns {string | null}
 */
export function takeToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    write(TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    history.replaceState(history.state, '', url);
    return fromUrl;
  }
  return read(TOKEN_KEY);
}

/** @param {string | null} token */
export function storeToken(token) {
  write(TOKEN_KEY, token);
}

/** @returns {'light' | 'dark' | null} null = follow the system */
export function storedTheme() {
  const t = read(THEME_KEY);
  return t === 'light' || t === 'dark' ? t : null;
}

/** @param {'light' | 'dark' | null} theme */
export function storeTheme(theme) {
  write(THEME_KEY, theme);
}

/** The workflow in the hash, "#workflow=<uuid>", or null. */
export function workflowFromHash() {
  const m = /(?:^#|&)workflow=([0-9a-fA-F-]{36})\b/.exec(location.hash);
  return m ? m[1].toLowerCase() : null;
}
