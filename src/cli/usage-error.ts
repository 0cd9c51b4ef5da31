/** sysexits(3) codes the CLI uses, so scripts and supervisors can tell a typo from an outage. */
export const EX_OK = 0;
export const EX_USAGE = 64;
export const EX_UNAVAILABLE = 69;
export const EX_SOFTWARE = 70;
export const EX_NOPERM = 77;
/** What shells return when a command cannot be found / executed. */
export const EX_NOTFOUND = 127;
export const EX_NOEXEC = 126;

/**
 * A mistake in the command line. The CLI prints its message on one line with a hint and exits 64;
 * never a stack trace. Not exported from the package: the library reports bad input with `ConfigError`.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super(message);
  }
}
