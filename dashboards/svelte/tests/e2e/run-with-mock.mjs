#!/usr/bin/env node
// Runs ui.e2e.mjs against the mock server: starts it on a free loopback port, runs the test,
// stops the mock by its PID. Needs dist/ (npm run build). Exit code: the test's.
//   node tests/e2e/run-with-mock.mjs      (MESHHOOK_SCREENSHOT_DIR to keep screenshots)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
if (!existsSync(resolve(here, '../../dist/index.html'))) {
  console.error('run-with-mock: dist/ is not built; run `npm run build` first');
  process.exit(1);
}
const token = 'demo-token';
const mock = spawn(process.execPath, [resolve(here, 'mock-server.mjs'), '--port', '0', '--token', token], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const stopMock = () => {
  if (mock.exitCode === null && mock.pid) process.kill(mock.pid, 'SIGTERM');
};
process.on('exit', stopMock);

const url = await new Promise((ok, fail) => {
  let out = '';
  const timer = setTimeout(() => fail(new Error('the mock server did not start in 10 s')), 10_000);
  mock.stdout.on('data', (chunk) => {
    out += chunk;
    const m = /listening on (http:\/\/\S+)/.exec(out);
    if (m) {
      clearTimeout(timer);
      ok(m[1]);
    }
  });
  mock.on('exit', (code) => fail(new Error(`the mock server exited (${code})`)));
}).catch((e) => {
  console.error(`run-with-mock: ${e.message}`);
  stopMock();
  process.exit(1);
});

const test = spawn(process.execPath, [resolve(here, 'ui.e2e.mjs')], {
  stdio: 'inherit',
  env: { ...process.env, MESHHOOK_UI_URL: `${url}/ui/`, MESHHOOK_UI_TOKEN: token },
});
const code = await new Promise((ok) => test.on('exit', (c, signal) => ok(c ?? (signal ? 1 : 0))));
stopMock();
process.exit(code);
