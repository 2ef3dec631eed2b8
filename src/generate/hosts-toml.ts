/**
 * containerd's registry host configuration (`config_path`, e.g. /etc/containerd/certs.d):
 * one `<registry host>/hosts.toml` per upstream, plus `_default/hosts.toml` for every other
 * registry. containerd tries the `[host."..."]` entries in order and the `server` last, so
 * when regcache is down pulls still go to the real registry.
 *
 * The directory name is the registry host exactly as containerd looks it up: `docker.io`
 * (not registry-1.docker.io), `myreg:5000` with its port.
 *
 * TOML is written by hand: strings are JSON-escaped, which is valid for TOML basic strings.
 */
import type { Config } from '../config/types.js';
import { basicAuthorization, mainEndpoint, mirrorEndpoints, ownNameEndpoints, type GenerateOptions } from './endpoints.js';

export interface GeneratedFile {
  /** Relative to the certs.d directory, `/`-separated: `docker.io/hosts.toml`. */
  path: string;
  content: string;
}

const q = (s: string): string => JSON.stringify(s);

/** The `[host."<endpoint>"]` block (and its header table) pointing at regcache. */
function hostBlock(endpoint: string, opts: GenerateOptions, push = false): string[] {
  const lines = [`[host.${q(endpoint)}]`, `  capabilities = ${push ? '["pull", "resolve", "push"]' : '["pull", "resolve"]'}`];
  if (opts.caFile !== undefined) lines.push(`  ca = ${q(opts.caFile)}`);
  if (opts.insecureSkipVerify) lines.push('  skip_verify = true');
  if (opts.auth) {
    lines.push('', `[host.${q(endpoint)}.header]`, `  Authorization = ${q(basicAuthorization(opts.auth.username, opts.auth.password))}`);
  }
  return lines;
}

export function renderHostsToml(cfg: Config, opts: GenerateOptions = {}): GeneratedFile[] {
  const files: GeneratedFile[] = [];
  for (const e of mirrorEndpoints(cfg, opts)) {
    const lines: string[] = [];
    if (e.fallback) lines.push(`# ${e.host} has no port in the regcache config: routed by ns through the main endpoint`);
    lines.push(`server = ${q(e.upstreamUrl)}`, '', ...hostBlock(e.endpoint, opts));
    files.push({ path: `${e.host}/hosts.toml`, content: lines.join('\n') + '\n' });
  }
  for (const o of ownNameEndpoints(cfg, opts)) {
    // regcache's own name: regcache is the registry (hosted repositories), so it is also the server.
    const lines = [`# ${o.host} is regcache itself (hosted.names): pushes and pulls of hosted repositories`, `server = ${q(o.endpoint)}`, '', ...hostBlock(o.endpoint, opts, true)];
    files.push({ path: `${o.host}/hosts.toml`, content: lines.join('\n') + '\n' });
  }
  if (opts.includeDefault) {
    // No `server`: containerd then falls back to the registry host itself (https://<host>).
    files.push({ path: '_default/hosts.toml', content: hostBlock(mainEndpoint(cfg, opts), opts).join('\n') + '\n' });
  }
  return files;
}

/** All files as one text: each preceded by a `# <relative path>` line, separated by a blank line. */
export function concatFiles(files: GeneratedFile[]): string {
  return files.map((f) => `# ${f.path}\n${f.content}`).join('\n');
}
