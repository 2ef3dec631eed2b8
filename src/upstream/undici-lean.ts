/**
 * The parts of undici regcache uses (Agent with its `request` method, and the error
 * classes it tests for), loaded from their own modules instead of the package's index,
 * which loads every dispatcher, mock agent, cache and the fetch implementation: about
 * 60 ms of start-up, a large part of a short `regcache copy` (issue 13's bench compares it
 * with skopeo, a Go binary). The index installs `request` on Dispatcher.prototype
 * (`Object.assign(Dispatcher.prototype, api)`); this does the same for `request` alone,
 * with the same function, so loading the index later changes nothing. They are the very
 * objects the index exports: test/unit/undici-lean.test.ts checks, so an undici release
 * that moves them fails there, not at run time.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(import.meta.url);

const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: Record<string, unknown> };
if (Dispatcher.prototype.request === undefined) Dispatcher.prototype.request = require('undici/lib/api/api-request.js') as unknown;

export const Agent = require('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
export type Agent = Undici.Agent;
export const errors = require('undici/lib/core/errors.js') as typeof Undici.errors;
