/**
 * One connection limit for the whole process (every listener shares it), where idle
 * connections yield to new ones: at the limit, a new connection closes the connection that
 * has been idle longest, and is refused only when every connection is busy. Without this,
 * clients that reopen idle keep-alive connections as fast as they are closed keep the
 * limit full and real pulls are refused (issue 10, item 3).
 *
 * "Idle" means no request in progress: a connection that has not sent a request yet (still
 * in its TLS handshake, or sending headers) counts as idle, so it is evicted before one that
 * is serving a response. A connection is identified by its address quadruple, which the raw
 * socket, a TLS socket over it and an HTTP/2 session's socket all report alike.
 */
import type { Socket } from 'node:net';

interface Conn {
  key: string;
  socket: Socket;
  /** Requests (HTTP/1.1) or streams (HTTP/2) in progress. */
  active: number;
}

export function connectionKey(s: { remoteAddress?: string; remotePort?: number; localAddress?: string; localPort?: number }): string {
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}

export class ConnectionPool {
  private readonly conns = new Map<string, Conn>();
  /** Idle connections in the order they became idle: the first is the one idle longest. */
  private readonly idle = new Map<string, Conn>();
  /** Connections closed to make room for new ones (for logs and tests). */
  evicted = 0;
  refused = 0;

  constructor(public limit: number) {}

  get size(): number {
    return this.conns.size;
  }

  /**
   * Registers a new connection; at the limit, closes the longest-idle one to make room.
   * Returns false (and registers nothing) when every connection is busy: the caller refuses it.
   */
  admit(socket: Socket): boolean {
    if (this.conns.size >= this.limit) {
      const oldest = this.idle.values().next().value as Conn | undefined;
      if (!oldest) {
        this.refused++;
        return false;
      }
      this.remove(oldest);
      this.evicted++;
      oldest.socket.destroy();
    }
    const key = connectionKey(socket);
    const c: Conn = { key, socket, active: 0 };
    this.conns.set(key, c);
    this.idle.set(key, c);
    socket.once('close', () => {
      this.remove(c);
    });
    return true;
  }

  /** A request or stream started on the connection with this key. */
  begin(key: string): void {
    const c = this.conns.get(key);
    if (!c) return;
    c.active++;
    this.idle.delete(key);
  }

  /** A request or stream on the connection with this key finished. */
  end(key: string): void {
    const c = this.conns.get(key);
    if (!c || c.active === 0) return;
    c.active--;
    if (c.active === 0) this.idle.set(key, c);
  }

  private remove(c: Conn): void {
    if (this.conns.get(c.key) !== c) return;
    this.conns.delete(c.key);
    this.idle.delete(c.key);
  }
}
