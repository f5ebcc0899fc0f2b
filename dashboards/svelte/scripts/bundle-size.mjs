#!/usr/bin/env node
// The gzip size of the standalone page in dist/ (every file the browser loads), against the
// budget. `npm run size`; exits 1 when over budget.
//   node scripts/bundle-size.mjs [--budget-kb 100]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const dist = resolve(dirname(fileURLToPath(import.meta.url)), '../dist');
const i = process.argv.indexOf('--budget-kb');
const budget = (i > 0 ? Number(process.argv[i + 1]) : 100) * 1000;

/** @param {string} dir @returns {string[]} */
const walk = (dir) => readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? walk(join(dir, f)) : [join(dir, f)]));

let files;
try {
  files = walk(dist).filter((f) => /\.(html|js|css|svg)$/.test(f)).sort();
} catch {
  console.error('bundle-size: dist/ is not built; run `npm run build`');
  process.exit(1);
}
let raw = 0;
let gz = 0;
for (const f of files) {
  const data = readFileSync(f);
  const z = gzipSync(data, { level: 9 }).length;
  raw += data.length;
  gz += z;
  console.log(`${relative(dist, f).padEnd(36)} ${(data.length / 1000).toFixed(2).padStart(8)} kB  gzip ${(z / 1000).toFixed(2).padStart(7)} kB`);
}
console.log(`${'total'.padEnd(36)} ${(raw / 1000).toFixed(2).padStart(8)} kB  gzip ${(gz / 1000).toFixed(2).padStart(7)} kB  (budget ${budget / 1000} kB)`);
if (gz > budget) {
  console.error(`bundle-size: ${(gz / 1000).toFixed(2)} kB gzip is over the ${budget / 1000} kB budget`);
  process.exit(1);
}
