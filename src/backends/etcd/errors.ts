import {
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCUnauthenticatedError,
} from 'etcd3';
import {
  AbortedError,
  BackendUnavailableError,
  DeadlineExceededError,
  ForbiddenError,
  LeaderLockError,
} from '../../core/errors.js';
import { errorText } from '../../core/retry.js';

/**
 * etcd3/gRPC failures → our typed errors. gRPC status codes (https://grpc.io/docs/guides/status-codes/):
 * UNAVAILABLE (14) and most server-side "etcdserver: …" failures (no leader, request timed out) are
 * unavailability and ambiguous for writes; DEADLINE_EXCEEDED (4) is our own deadline; PERMISSION_DENIED
 * (7) and UNAUTHENTICATED (16) and a wrong password are `ForbiddenError` (retrying does not help).
 */

/** The lease is gone on the server (expired or revoked): keys on it are deleted. Not an outage. */
export class LeaseGoneError extends Error {
  override readonly name = 'LeaseGoneError';
}

const GRPC_CANCELLED = 1;
const GRPC_INVALID_ARGUMENT = 3;
const GRPC_DEADLINE = 4;
const GRPC_NOT_FOUND = 5;
const GRPC_PERMISSION_DENIED = 7;
const GRPC_FAILED_PRECONDITION = 9;
const GRPC_OUT_OF_RANGE = 11;
const GRPC_UNIMPLEMENTED = 12;
const GRPC_UNAUTHENTICATED = 16;

/** `reason` of the error we map etcd's "requested lease not found" to. */
export const LEASE_NOT_FOUND = 'LeaseNotFound';

export function isLeaseGone(err: unknown): boolean {
  return (
    err instanceof LeaseGoneError ||
    err instanceof EtcdLeaseInvalidError ||
    (err instanceof LeaderLockError && err.reason === LEASE_NOT_FOUND) ||
    /requested lease not found/.test(messageOf(err))
  );
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function grpcCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Maps any failure of one etcd call to a `LeaderLockError` (kept as is when it already is one). */
export function mapEtcdError(err: unknown, what: string): LeaderLockError {
  if (err instanceof LeaderLockError) return err;
  const text = `${what}: ${errorText(err)}`;
  const code = grpcCode(err);
  const msg = messageOf(err);
  if (
    err instanceof EtcdPermissionDeniedError ||
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof GRPCUnauthenticatedError ||
    code === GRPC_PERMISSION_DENIED ||
    code === GRPC_UNAUTHENTICATED ||
    /permission denied|authentication failed|user name is empty|invalid auth token/.test(msg)
  ) {
    return new ForbiddenError(text, { backend: 'etcd', cause: err, status: code });
  }
  if (isLeaseGone(err)) {
    // Not an outage: the lease expired or was revoked. Never retried; callers grant a new lease.
    return new LeaderLockError(text, { backend: 'etcd', cause: err, status: GRPC_NOT_FOUND, reason: LEASE_NOT_FOUND });
  }
  if (err instanceof GRPCDeadlineExceededError || code === GRPC_DEADLINE || /deadline exceeded/i.test(msg)) {
    return new DeadlineExceededError(text, { backend: 'etcd', cause: err, status: GRPC_DEADLINE });
  }
  if (
    code === GRPC_INVALID_ARGUMENT ||
    code === GRPC_NOT_FOUND ||
    code === GRPC_FAILED_PRECONDITION ||
    code === GRPC_OUT_OF_RANGE ||
    code === GRPC_UNIMPLEMENTED
  ) {
    // A request etcd will never accept (too large, bad key, compacted revision…): retrying cannot help.
    return new LeaderLockError(text, { backend: 'etcd', cause: err, status: code });
  }
  if (code === GRPC_CANCELLED && /aborted|closed/i.test(msg)) {
    return new AbortedError(text, { backend: 'etcd', cause: err, status: code });
  }
  // UNAVAILABLE, connection refused/reset, "etcdserver: no leader", "request timed out", internal errors.
  return new BackendUnavailableError(text, { backend: 'etcd', cause: err, status: code });
}

/** Failures worth trying again on another member (or the same one after a short backoff). */
export function isRetryable(err: LeaderLockError): boolean {
  return err instanceof BackendUnavailableError;
}
