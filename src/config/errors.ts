/** The error every config rule throws: its message starts with the key path it is about. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function fail(key: string, msg: string): never {
  throw new ConfigError(`${key}: ${msg}`);
}
