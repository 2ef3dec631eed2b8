/**
 * A private containerd for tests: runs as root with a generated config.toml (version 2) whose root, state, temp dir,
 * grpc and ttrpc sockets all live in one temp dir. CRI and the snapshotters/plugins that need kernel features or
 * tools we do not have are disabled; images are unpacked with the `native` snapshotter (plain copies, no overlay).
 * Content is `isolated` between namespaces, so a pull in a fresh namespace (or after `content rm`) really fetches
 * every blob again instead of borrowing it from another namespace.
 *
 * `ctr` is the client: `ctr images pull --hosts-dir DIR` reads a containerd hosts.toml tree exactly as a node with
 * `config_path` does (in containerd 1.6 the fetch runs in the ctr process itself).
 *
 * stop() kills containerd, unmounts anything still mounted under its directory and removes it. Nothing else is ever
 * started (no shims: no container is run).
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, spawnManaged, type ManagedProcess } from './children.js';
import { waitUntil } from './http-probe.js';
import { removeTmpDir, tmpDir } from './tmp.js';

export interface CtrResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface PullOptions {
  /** A containerd hosts.toml tree (`<dir>/<registry host>/hosts.toml`). */
  hostsDir: string;
  /** e.g. `linux/arm64`. */
  platform?: string;
  allPlatforms?: boolean;
  /** containerd namespace (default `test`). */
  namespace?: string;
  /** Adds --plain-http. Not needed with hosts.toml: the scheme comes from the host URL. */
  plainHttp?: boolean;
  timeoutMs?: number;
}

export interface ImageRecord {
  ref: string;
  /** The manifest (or index) media type. */
  type: string;
  /** Digest of the manifest/index containerd resolved the reference to. */
  digest: string;
}

export interface ImageCheck extends ImageRecord {
  /** `complete` when every blob of the (platform-matched) image is in the content store. */
  status: 'complete' | 'incomplete' | string;
  have: number;
  need: number;
  /** Unpacked into the snapshotter given to check() (native). */
  unpacked: boolean;
}

export interface SnapshotRecord {
  key: string;
  parent: string;
  kind: string;
}

export interface Containerd {
  /** The grpc socket (`ctr -a SOCKET`). */
  socket: string;
  root: string;
  state: string;
  /** The temp dir holding config, root, state and sockets. */
  dir: string;
  configPath: string;
  /** Default namespace of the helpers below. */
  namespace: string;
  readonly running: boolean;
  /** `ctr -a SOCKET -n NS ARGS...`. */
  ctr(args: string[], opts?: { namespace?: string; timeoutMs?: number }): Promise<CtrResult>;
  /** `ctr images pull --hosts-dir DIR --snapshotter native [--platform P | --all-platforms] IMAGE`. */
  pull(image: string, opts: PullOptions): Promise<CtrResult>;
  /** Image references in the namespace (`ctr images ls -q`). */
  images(namespace?: string): Promise<string[]>;
  /** `ctr images ls`, parsed. */
  imageList(namespace?: string): Promise<ImageRecord[]>;
  /** `ctr images check --snapshotter native`, parsed: content completeness and whether it is unpacked. */
  check(namespace?: string): Promise<ImageCheck[]>;
  /** `ctr snapshots --snapshotter native ls`, parsed. */
  snapshots(namespace?: string): Promise<SnapshotRecord[]>;
  /** Digests in the namespace's content store (`ctr content ls -q`). */
  contentDigests(namespace?: string): Promise<string[]>;
  /** Removes every image (`images rm --sync`) and every blob (`content rm`) of the namespace; throws on failure. */
  forgetEverything(namespace?: string): Promise<void>;
  /** containerd's own output (it logs to stderr). */
  logs(): string;
  /** Kills containerd, unmounts what is left under `dir`, removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

/** Plugins that cannot or need not start here: CRI (no CNI, no cgroup setup wanted), snapshotters needing kernel or tools, tracing. */
const DISABLED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.overlayfs',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing',
];

const q = (s: string): string => JSON.stringify(s);

function configToml(dir: string, socket: string, ttrpc: string): string {
  return [
    'version = 2',
    `root = ${q(join(dir, 'root'))}`,
    `state = ${q(join(dir, 'state'))}`,
    `temp = ${q(join(dir, 'tmp'))}`,
    `plugin_dir = ""`,
    `disabled_plugins = [${DISABLED_PLUGINS.map(q).join(', ')}]`,
    'oom_score = 0',
    '',
    '[grpc]',
    `  address = ${q(socket)}`,
    '',
    '[ttrpc]',
    `  address = ${q(ttrpc)}`,
    '',
    '[debug]',
    '  address = ""',
    '  level = "info"',
    '',
    '[metrics]',
    '  address = ""',
    '',
    '[plugins]',
    '  [plugins."io.containerd.metadata.v1.bolt"]',
    '    content_sharing_policy = "isolated"',
    '  [plugins."io.containerd.internal.v1.opt"]',
    `    path = ${q(join(dir, 'opt'))}`,
    '',
  ].join('\n');
}

/** Mount points at or below `dir` (deepest first), from /proc/self/mountinfo (octal escapes decoded). */
export function mountsUnder(dir: string): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const decode = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const mp = line.split(' ')[4];
    if (mp === undefined) continue;
    const p = decode(mp);
    if (p === dir || p.startsWith(`${dir}/`)) out.push(p);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Splits a `ctr` table into rows of whitespace-separated cells, without its header line. */
function rows(stdout: string): string[] {
  return stdout.split('\n').slice(1).map((l) => l.trim()).filter((l) => l !== '');
}

export async function startContainerd(opts: { namespace?: string; startTimeoutMs?: number } = {}): Promise<Containerd> {
  if (process.getuid?.() !== 0) throw new Error('startContainerd: containerd needs root');
  const dir = tmpDir('regcache-containerd-');
  const socket = join(dir, 'containerd.sock');
  const ttrpc = join(dir, 'containerd-ttrpc.sock');
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  for (const d of [root, state, join(dir, 'tmp'), join(dir, 'opt')]) mkdirSync(d, { recursive: true });
  const configPath = join(dir, 'config.toml');
  writeFileSync(configPath, configToml(dir, socket, ttrpc));
  const namespace = opts.namespace ?? 'test';

  // TMPDIR too: anything containerd creates with os.TempDir() stays inside dir.
  const proc: ManagedProcess = spawnManaged('containerd', ['--config', configPath], {
    env: { ...process.env, TMPDIR: join(dir, 'tmp') },
  });

  const ctr = (args: string[], o: { namespace?: string; timeoutMs?: number } = {}): Promise<CtrResult> =>
    runCommand('ctr', ['-a', socket, '-n', o.namespace ?? namespace, ...args], { timeoutMs: o.timeoutMs ?? 60_000 }).then((r) => ({
      code: r.code, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut,
    }));

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await proc.stop('SIGTERM', 5_000);
    // Only containerd's own temp mounts can be here (the native snapshotter bind-mounts while unpacking).
    for (const m of mountsUnder(dir)) {
      const r = await runCommand('umount', [m], { timeoutMs: 10_000 });
      if (r.code !== 0) await runCommand('umount', ['-l', m], { timeoutMs: 10_000 });
    }
    const left = mountsUnder(dir);
    if (left.length) throw new Error(`containerd stop: still mounted under ${dir}: ${left.join(', ')}`);
    await removeTmpDir(dir);
  };

  try {
    const timeoutMs = opts.startTimeoutMs ?? 15_000;
    let last = '';
    try {
      await waitUntil(
        async () => {
          if (!proc.running) throw new Error(`containerd exited before it was ready (code ${proc.exitResult?.code}) ${proc.spawnError?.message ?? ''}`);
          const r = await runCommand('ctr', ['-a', socket, 'version'], { timeoutMs: 5_000 });
          last = r.stderr.trim();
          return r.code === 0;
        },
        { timeoutMs, intervalMs: 100 },
      );
    } catch (e) {
      throw new Error(`containerd not ready: ${(e as Error).message} (last ctr error: ${last || 'none'})`);
    }
  } catch (e) {
    await stop().catch(() => undefined);
    throw new Error(`${(e as Error).message}\ncontainerd stderr:\n${proc.stderr().slice(-4000)}`);
  }

  const imageList = async (ns?: string): Promise<ImageRecord[]> => {
    const r = await ctr(['images', 'ls'], { namespace: ns });
    if (r.code !== 0) throw new Error(`ctr images ls failed: ${r.stderr}`);
    return rows(r.stdout).map((l) => {
      const [ref, type, digest] = l.split(/\s+/);
      return { ref: ref!, type: type!, digest: digest! };
    });
  };

  const lines = (stdout: string): string[] => stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const images = async (ns?: string): Promise<string[]> => {
    const r = await ctr(['images', 'ls', '-q'], { namespace: ns });
    if (r.code !== 0) throw new Error(`ctr images ls failed: ${r.stderr}`);
    return lines(r.stdout);
  };
  const contentDigests = async (ns?: string): Promise<string[]> => {
    const r = await ctr(['content', 'ls', '-q'], { namespace: ns });
    if (r.code !== 0) throw new Error(`ctr content ls failed: ${r.stderr}`);
    return lines(r.stdout);
  };

  return {
    socket,
    root,
    state,
    dir,
    configPath,
    namespace,
    get running() {
      return proc.running;
    },
    ctr,
    pull(image, o) {
      const args = ['images', 'pull', '--hosts-dir', o.hostsDir, '--snapshotter', 'native'];
      if (o.plainHttp) args.push('--plain-http');
      if (o.platform !== undefined) args.push('--platform', o.platform);
      if (o.allPlatforms) args.push('--all-platforms');
      args.push(image);
      return ctr(args, { namespace: o.namespace, timeoutMs: o.timeoutMs ?? 60_000 });
    },
    images,
    imageList,
    async check(ns) {
      const r = await ctr(['images', 'check', '--snapshotter', 'native'], { namespace: ns });
      if (r.code !== 0) throw new Error(`ctr images check failed: ${r.stderr}`);
      // REF TYPE DIGEST STATUS SIZE UNPACKED, where STATUS is e.g. "complete (3/3)" and SIZE "1.2 KiB/1.2 KiB".
      return rows(r.stdout).map((l) => {
        const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+\((\d+)\/(\d+)\).*\s(true|false)$/.exec(l);
        if (!m) throw new Error(`cannot parse ctr images check line: ${l}`);
        return { ref: m[1]!, type: m[2]!, digest: m[3]!, status: m[4]!, have: Number(m[5]), need: Number(m[6]), unpacked: m[7] === 'true' };
      });
    },
    async snapshots(ns) {
      const r = await ctr(['snapshots', '--snapshotter', 'native', 'ls'], { namespace: ns });
      if (r.code !== 0) throw new Error(`ctr snapshots ls failed: ${r.stderr}`);
      return rows(r.stdout).map((l) => {
        const [key, parent, kind] = l.split(/\s+/);
        // A snapshot without parent prints an empty PARENT column.
        return kind === undefined ? { key: key!, parent: '', kind: parent! } : { key: key!, parent: parent!, kind };
      });
    },
    contentDigests,
    async forgetEverything(ns) {
      const refs = await images(ns);
      if (refs.length) {
        const r = await ctr(['images', 'rm', '--sync', ...refs], { namespace: ns });
        if (r.code !== 0) throw new Error(`ctr images rm failed: ${r.stderr}`);
      }
      const digests = await contentDigests(ns);
      if (digests.length) {
        const r = await ctr(['content', 'rm', ...digests], { namespace: ns });
        if (r.code !== 0) throw new Error(`ctr content rm failed: ${r.stderr}`);
      }
      const left = await contentDigests(ns);
      if (left.length) throw new Error(`content still present after content rm: ${left.join(' ')}`);
    },
    logs: () => proc.stderr() + proc.stdout(),
    stop,
  };
}
