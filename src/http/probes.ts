import type { HealthStatus } from './status.js';

/**
 * The probe endpoints and how each judges a status. Pure functions: the HTTP layer only maps the
 * verdict to 200/503.
 *
 * - `/leader`, `/primary`, `/master`: leading *and* the term is valid right now. `/master` stays as
 *   an alias for load balancers configured before the rename (Patroni keeps `GET /master` too).
 * - `/replica`: following a known live leader that is not us. A candidate that sees no leader is
 *   not a replica: a load balancer sending reads there would read from a member that is not
 *   replicating from anyone.
 * - `/readiness`: a leader whose term is valid right now, or a replica of a known live leader. Not
 *   ready: a leader past its `validUntil`, a stopped elector, a stalled loop, and a candidate that
 *   sees no leader. The last one is the ex-primary cut off from the DCS: its term has ended, but it
 *   cannot remove its own `role=primary` label either, so readiness is what takes it out of the
 *   Service endpoints (the failure Patroni's history describes). Healthy followers are ready, so a
 *   rolling update (where a leader exists) never stalls; during a leaderless failover window the
 *   candidates are briefly not ready, as Patroni replicas that lost their primary are.
 * - `/liveness`: the loop makes progress. Never tied to leadership, or Kubernetes would restart
 *   every follower. A stopped elector is alive (stopping is deliberate, not a hang).
 * - `/health`: like liveness, with the full status as JSON (also returned by every other endpoint).
 */
export const PROBES = ['leader', 'primary', 'master', 'replica', 'readiness', 'liveness', 'health'] as const;
export type Probe = (typeof PROBES)[number];

export function isProbe(name: string): name is Probe {
  return (PROBES as readonly string[]).includes(name);
}

export function judge(probe: Probe, s: HealthStatus): boolean {
  switch (probe) {
    case 'leader':
    case 'primary':
    case 'master':
      return isServingLeader(s);
    case 'replica':
      return isReplica(s);
    case 'readiness':
      if (s.loopStalled) return false;
      return isServingLeader(s) || isReplica(s);
    case 'liveness':
    case 'health':
      return s.role === 'stopped' || !s.loopStalled;
  }
}

export function isServingLeader(s: HealthStatus): boolean {
  return s.role === 'leader' && s.isValid;
}

export function isReplica(s: HealthStatus): boolean {
  if (s.role === 'follower') return true;
  // An observer (campaign: false) reports its own role; it replicates when a leader other than us is known.
  return s.role === 'observer' && s.holder !== undefined && s.holder !== s.identity;
}
