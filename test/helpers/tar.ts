/** A minimal ustar writer: regular files, directories and symlinks, 512-byte blocks, deterministic (mtime 0, uid/gid 0). */

export interface TarEntry {
  path: string;
  type?: 'file' | 'dir' | 'symlink';
  data?: Buffer;
  /** Permission bits (default 0o644 for files, 0o755 for directories, 0o777 for symlinks). */
  mode?: number;
  /** Target of a symlink. */
  linkname?: string;
  /** Seconds since the epoch (default 0). */
  mtime?: number;
}

const BLOCK = 512;

function putString(h: Buffer, offset: number, length: number, value: string): void {
  const b = Buffer.from(value, 'utf8');
  if (b.length > length) throw new Error(`tar: ${JSON.stringify(value)} does not fit in ${length} bytes`);
  b.copy(h, offset);
}

function putOctal(h: Buffer, offset: number, length: number, value: number): void {
  const s = value.toString(8);
  if (s.length > length - 1) throw new Error(`tar: ${value} does not fit in a ${length}-byte octal field`);
  putString(h, offset, length, s.padStart(length - 1, '0') + '\0');
}

/** Splits a path into ustar (prefix, name): name ≤ 100 bytes, prefix ≤ 155 bytes. */
function splitPath(path: string): [string, string] {
  if (Buffer.byteLength(path) <= 100) return ['', path];
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name !== '') return [prefix, name];
  }
  throw new Error(`tar: path too long for ustar: ${path}`);
}

function header(e: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  const type = e.type ?? 'file';
  const path = type === 'dir' && !e.path.endsWith('/') ? `${e.path}/` : e.path;
  const [prefix, name] = splitPath(path);
  putString(h, 0, 100, name);
  putOctal(h, 100, 8, e.mode ?? (type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644));
  putOctal(h, 108, 8, 0); // uid
  putOctal(h, 116, 8, 0); // gid
  putOctal(h, 124, 12, size);
  putOctal(h, 136, 12, e.mtime ?? 0);
  h.fill(0x20, 148, 156); // checksum is computed with this field as spaces
  h[156] = type === 'dir' ? 0x35 : type === 'symlink' ? 0x32 : 0x30;
  if (e.linkname !== undefined) putString(h, 157, 100, e.linkname);
  putString(h, 257, 6, 'ustar\0');
  putString(h, 263, 2, '00');
  putString(h, 265, 32, 'root');
  putString(h, 297, 32, 'root');
  putOctal(h, 329, 8, 0);
  putOctal(h, 337, 8, 0);
  putString(h, 345, 155, prefix);
  let sum = 0;
  for (const byte of h) sum += byte;
  putString(h, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

/** Serialises entries in order into an uncompressed tar archive (ending with two zero blocks). */
export function writeTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = (e.type ?? 'file') === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    parts.push(header(e, data.length));
    if (data.length > 0) {
      parts.push(data);
      const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
      if (pad > 0) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

/** A tar of the given files (paths relative, '/'-separated), with entries for their parent directories first. */
export function tarFiles(files: Record<string, Buffer | string>): Buffer {
  const dirs = new Set<string>();
  const entries: TarEntry[] = [];
  for (const path of Object.keys(files).sort()) {
    const clean = path.replace(/^\/+/, '');
    const parts = clean.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        entries.push({ path: d, type: 'dir' });
      }
    }
    const v = files[path]!;
    entries.push({ path: clean, data: typeof v === 'string' ? Buffer.from(v, 'utf8') : v });
  }
  return writeTar(entries);
}
