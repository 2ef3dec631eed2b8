/**
 * The two parts of undici regcache uses (Agent and its error classes), loaded without
 * undici's index module. The index also loads fetch, WebSocket, EventSource, the cache
 * stores and the mocks, and through its cookies module Node's own bundled copy of undici:
 * about 90 ms of every start of every regcache command, the largest single part of a
 * `regcache copy` start-up (measured: `require('undici')` 0.17 s against 0.11 s for these
 * modules, `node -e 0` 0.08 s). The error classes are the same objects the index exports
 * (one module instance per path), so `instanceof` holds whichever way they were loaded.
 *
 * undici's package has no `exports` map, so these paths are public files; a test checks
 * that they are the index's own classes, so an upgrade that moves them fails loudly.
 */
import { createRequire } from 'node:module';
import type * as UndiciTypes from 'undici';

const load = createRequire(import.meta.url);
// What the index does before exporting Agent: request(), stream() and the rest of the API
// live on Dispatcher.prototype. Assigning the same functions again is harmless.
Object.assign((load('undici/lib/dispatcher/dispatcher.js') as { prototype: object }).prototype, load('undici/lib/api/index.js'));

export const Agent = load('undici/lib/dispatcher/agent.js') as typeof UndiciTypes.Agent;
export type Agent = UndiciTypes.Agent;
export const errors = load('undici/lib/core/errors.js') as typeof UndiciTypes.errors;
