/**
 * Observer-side expiry, as client-go (`observedTime`) and Patroni (`_leader_observed_time`) judge it:
 * Kubernetes has no server-side TTL, so a record is live until *this process* has seen it unchanged
 * for its recorded duration, measured on its own monotonic clock. Wall-clock times in the record are
 * never compared with our clock (they may be skewed).
 *
 * "Unchanged" compares the identity of the write (holder, token, renewTime, acquireTime, duration),
 * not `resourceVersion`: another client patching an unrelated field (a label, Patroni's `optime`)
 * must not keep a dead leader alive forever, nor may it cut a live one short.
 *
 * A process that sees a record for the first time starts counting then: a new process waits a full
 * duration before taking over a record it has never seen change, unless the record is released.
 */
export class ObservedValue {
  #identity: string | undefined;
  #seenAt = 0;

  /**
   * Records an observation of `identity` at monotonic `now` and returns when it expires (monotonic ms).
   * The countdown restarts only when the identity changes. `seenAt` lets a writer start the countdown at
   * the send time of its own confirmed write (earlier than now: the conservative side).
   */
  observe(identity: string, durationMs: number, now: number, seenAt: number = now): number {
    if (identity !== this.#identity) {
      this.#identity = identity;
      this.#seenAt = Math.min(seenAt, now);
    }
    return this.#seenAt + durationMs;
  }

  /** Forget what was seen (the object disappeared). */
  reset(): void {
    this.#identity = undefined;
    this.#seenAt = 0;
  }

  get identity(): string | undefined {
    return this.#identity;
  }
}
