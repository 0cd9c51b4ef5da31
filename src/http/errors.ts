import { redact } from '../core/errors.js';

export { ConfigError } from '../core/errors.js';

/** An error's text with credentials removed, for HTTP bodies and logs. */
export function errorTextSafe(err: unknown): string {
  return redact(err instanceof Error ? err.message : String(err));
}
