/** The error message validateConfig gives for a document, or '' when it validates (config tests). */
import { expect } from 'vitest';
import { ConfigError, validateConfig } from '../../src/config/validate.js';

export function configError(doc: unknown): string {
  try {
    validateConfig(doc);
    return '';
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
}
