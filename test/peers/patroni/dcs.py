"""Patroni 4's DCS code, driven the way its HA loop drives it (no PostgreSQL): one command per run.

Usage: python dcs.py '<json config>' <command> [args...]
  config: {"dcs": "etcd3"|"consul"|"kubernetes", "hosts": "127.0.0.1:2379", "scope": "...", "name": "...", "ttl": 10}
          kubernetes: "context" (a context of $KUBECONFIG), optional "use_endpoints", "pod_ip"; no "hosts"
Commands (each prints one JSON line):
  cluster                        -> {"leader": name|null, "failover": {...}|null, "members": [...]}
  touch_member [role]            -> register this member as its HA loop does, role default replica ({"ok": bool})
  acquire                        -> attempt_to_acquire_leader() ({"ok": bool})
  ha_acquire                     -> as the HA loop: attempt_to_acquire_leader() only if get_cluster() shows
                                    the cluster unlocked (no leader, or its record judged expired) ({"ok": bool})
  switchover <leader> <candidate> [scheduled_at]  -> manual_failover() as `patronictl switchover` ({"ok": bool})
  update_leader                  -> update_leader() as the HA loop of the leader ({"ok": bool})
  delete_leader                  -> delete_leader() as a clean shutdown ({"ok": bool})
  version                        -> {"patroni": "4.1.x"}

Test-only: lives under test/peers, never in the npm package.
"""
import datetime
import json
import logging
import sys

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

from patroni.dcs import get_dcs  # noqa: E402
from patroni.version import __version__  # noqa: E402


def make_dcs(cfg):
    dcs = cfg['dcs']
    config = {
        'scope': cfg['scope'],
        'name': cfg['name'],
        'ttl': cfg.get('ttl', 10),
        'loop_wait': cfg.get('loop_wait', 1),
        'retry_timeout': cfg.get('retry_timeout', 3),
    }
    if dcs == 'consul':
        config[dcs] = {'host': cfg['hosts']}
    elif dcs == 'kubernetes':
        # KUBECONFIG in the environment points at the API server; no bypass (loopback test servers).
        config[dcs] = {'namespace': cfg.get('k8s_namespace', 'default'), 'labels': {'application': 'patroni'},
                       'use_endpoints': bool(cfg.get('use_endpoints')), 'context': cfg['context'],
                       'pod_ip': cfg.get('pod_ip', '10.0.0.1')}
    else:
        config[dcs] = {'hosts': cfg['hosts'].split(',')}
    if 'namespace' in cfg:
        config['namespace'] = cfg['namespace']
    return get_dcs(config)


def cluster_json(c):
    f = c.failover
    return {
        'leader': c.leader.name if c.leader else None,
        'failover': {'leader': f.leader, 'member': f.candidate,
                     'scheduled_at': f.scheduled_at.isoformat() if f.scheduled_at else None} if f else None,
        'members': sorted(m.name for m in c.members),
    }


def main():
    cfg = json.loads(sys.argv[1])
    cmd = sys.argv[2]
    args = sys.argv[3:]
    if cmd == 'version':
        print(json.dumps({'patroni': __version__}))
        return
    dcs = make_dcs(cfg)
    cluster = dcs.get_cluster()
    if cmd == 'cluster':
        out = cluster_json(cluster)
    elif cmd == 'touch_member':
        out = {'ok': bool(dcs.touch_member({'conn_url': 'postgres://127.0.0.1:5432/postgres', 'api_url': 'http://127.0.0.1:8008/patroni',
                                            'state': 'running', 'role': args[0] if args else 'replica',
                                            'version': __version__}))}
    elif cmd == 'acquire':
        out = {'ok': bool(dcs.attempt_to_acquire_leader())}
    elif cmd == 'ha_acquire':
        out = {'ok': bool(cluster.is_unlocked() and dcs.attempt_to_acquire_leader())}
    elif cmd == 'switchover':
        scheduled = datetime.datetime.fromisoformat(args[2]) if len(args) > 2 else None
        out = {'ok': bool(dcs.manual_failover(args[0], args[1], scheduled_at=scheduled))}
    elif cmd == 'update_leader':
        out = {'ok': bool(dcs.update_leader(cluster, None))}
    elif cmd == 'delete_leader':
        out = {'ok': bool(dcs.delete_leader(cluster.leader))}
    else:
        raise SystemExit('unknown command ' + cmd)
    print(json.dumps(out))


if __name__ == '__main__':
    main()
