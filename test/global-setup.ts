/**
 * Runs once before the suite: the integration tests need real tools and a built dist/.
 * A missing tool fails the run with the command that installs it (never a silent skip).
 */
import { existsSync } from 'node:fs';
import { requireTools } from './helpers/require-tools.js';
import { CLI_PATH } from './helpers/regcache.js';

export default function setup(): void {
  requireTools(['docker-registry', 'skopeo', 'containerd', 'ctr', 'podman']);
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` (npm test does it)`);
}
