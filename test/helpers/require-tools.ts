/** Fail loudly (never skip) when a test needs a system tool that is not installed. */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Debian package that provides each tool a test may need. Tools not listed map to a package of the same name. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  podman: 'podman',
  ctr: 'containerd',
  containerd: 'containerd',
  nginx: 'nginx-light',
  openssl: 'openssl',
  perl: 'perl-base',
  promtool: 'prometheus',
  script: 'bsdutils',
};

/** Absolute path of `tool` on PATH, or undefined. */
export function whichTool(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/**
 * Throws `missing tools: X, Y. Install them with: apt-get install -y PKG...` when any tool is not on PATH.
 * Call it in beforeAll so a machine without the packages fails instead of skipping.
 */
export function requireTools(tools: string[]): void {
  const missing = tools.filter((t) => whichTool(t) === undefined);
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t] ?? t))];
  throw new Error(`missing tools: ${missing.join(', ')}. Install them with: apt-get install -y ${pkgs.join(' ')}`);
}
