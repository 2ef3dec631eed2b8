/**
 * Regenerates the key table of docs/config.md from the config schema.
 *   npm run docs:config           rewrite the table
 *   npm run docs:config -- --check exit 1 when the file is out of date
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { withConfigTable } from '../src/config/docs-table.js';

const file = new URL('../docs/config.md', import.meta.url);
const before = readFileSync(file, 'utf8');
const after = withConfigTable(before);
if (process.argv.includes('--check')) {
  if (after !== before) {
    process.stderr.write('docs/config.md is out of date: run npm run docs:config\n');
    process.exitCode = 1;
  }
} else if (after !== before) {
  writeFileSync(file, after);
  process.stdout.write('docs/config.md: table updated\n');
}
