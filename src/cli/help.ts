/** Help texts. Kept apart from the logic so they read like a man page. */
export const VERSION_HINT = 'leaderlock --version';

export const MAIN_HELP = `Usage: leaderlock <command> [flags]

Commands:
  run      run a command only while this process holds the leader key
  status   show the current holder, token, ttl and age
  watch    print one line per change of the leader key
  explain  what a set of timings implies (failover time, outage survived, margins)

Run 'leaderlock <command> --help' for its flags.
Exit codes: 0 ok (run: the command's own code), 64 bad usage, 69 backend unreachable, 77 permission denied.
`;

const CONNECTION_FLAGS = `Backend:
  -b, --backend URL      etcd://host:port[,host:port…] | etcds://… (TLS)
                         consul://host:port | consuls://… (TLS) | consul ($CONSUL_HTTP_ADDR)
                         kubernetes[:lease|endpoints|configmap] | memory (in-process, for trying things out)
                         (or $LEADERLOCK_BACKEND)
  -k, --key KEY          etcd/Consul key (e.g. /service/demo/leader), Kubernetes object name or namespace/name
                         (or $LEADERLOCK_KEY)
      --ttl DURATION     lease duration, e.g. 15s (default 15s)
      --endpoint URL     another etcd member (repeatable)
      --cacert FILE      CA bundle to verify the server (etcds://, consuls://)
      --cert FILE        client certificate, with --cert-key FILE
      --user NAME[:PW]   etcd user; --password PW or $LEADERLOCK_PASSWORD
      --token TOKEN      Consul ACL token (default $CONSUL_HTTP_TOKEN)
      --kubeconfig FILE, --context NAME, -n/--namespace NS   Kubernetes (default: in-cluster, else $KUBECONFIG / ~/.kube/config)
      --role-labels          Kubernetes: label this pod role=primary|replica (needs $POD_NAME)
      --bypass-api-service   Kubernetes: talk to the API servers directly, not through kube-proxy
      --request-timeout DURATION   deadline of one backend call`;

export const RUN_HELP = `Usage: leaderlock run --backend URL --key KEY [flags] -- COMMAND [ARGS…]

Runs COMMAND only while this process leads. The fencing token is in $LEADERLOCK_TOKEN
(also $LEADERLOCK_IDENTITY, $LEADERLOCK_KEY). COMMAND gets SIGTERM when leadership ends, and at
validUntil − grace at the latest (renewals failing), and SIGKILL just before validUntil (a quarter
of --grace, at most 250 ms, early): it is dead before anyone else can win. When COMMAND exits the lock is released and leaderlock exits with its code.
After a lost term it campaigns again and restarts COMMAND, unless --once. SIGINT, SIGTERM, SIGQUIT,
SIGHUP, SIGUSR1, SIGUSR2 are forwarded to COMMAND.

Watchdog: COMMAND runs in its own process group under a small reaper process that SIGKILLs the group
when leaderlock dies (kill -9, OOM) and at that kill time unless leaderlock, alive, has extended it
(leaderlock frozen by SIGSTOP); COMMAND gets pdeathsig KILL (setpriv) in case the reaper dies, and
leaderlock kills the group if it does. Not covered: the whole host frozen or suspended (VM pause,
docker pause), processes that leave the group (double-forking daemons: run them in the foreground)
— use the fencing token for those. Unlike Patroni's /dev/watchdog it needs no root or kernel module
and kills only COMMAND's group, never the machine.

  -i, --identity NAME         name in the lock record (default $LEADERLOCK_IDENTITY, else hostname-pid)
      --metadata TEXT         published with each term for followers (status/watch show it), ≤ 1 KiB
      --grace DURATION        time COMMAND gets between SIGTERM and SIGKILL (default 2s); must fit in the term
      --renew-deadline DURATION   step down when no renew is confirmed for this long (default 2/3 ttl)
      --retry-period DURATION     renew interval (default 2/15 ttl)
      --once                  exit after the first term instead of campaigning again
  -l, --listen HOST:PORT      serve /leader /primary /master /replica /readiness /liveness /health /metrics
                              (:PORT = every interface, for Kubernetes probes)
  -q, --quiet                 no progress lines on stderr

${CONNECTION_FLAGS}
`;

export const STATUS_HELP = `Usage: leaderlock status --backend URL --key KEY [--json]

Prints the holder, token, ttl and age of the leader key (one line, or JSON with --json).

${CONNECTION_FLAGS}
`;

export const WATCH_HELP = `Usage: leaderlock watch --backend URL --key KEY [--json]

Prints the current state, then one line per change (JSON lines with --json), until interrupted.

${CONNECTION_FLAGS}
`;

export const EXPLAIN_HELP = `Usage: leaderlock explain [--ttl 15s] [--renew-deadline D] [--retry-period D] [--drift 0.01] [--json]

What these timings imply: crash failover time, the longest backend outage a healthy leader survives,
the safety margin left for pauses. Exit code 64 when the timings are unsafe (the library would refuse them).
`;
