"""Patroni 4's DCS code driven the way its HA loop drives it, without PostgreSQL.

leaderlock's real-server tier (issue 14) and the interop tests (issue 16) start it with the
Patroni virtualenv that scripts/real/build.sh makes. One JSON line on stdout per step:

  {"event": "version", "patroni": "4.1.5", "python": "3.11.7", "dcs": "Kubernetes"}
  {"event": "cluster", "leader": null}                  get_cluster()
  {"event": "acquire", "ok": true}                       attempt_to_acquire_leader()
  {"event": "renew", "ok": true, "leader": "patroni-a"}  get_cluster() + update_leader(), every loop_wait
  {"event": "release", "ok": true}                       delete_leader()
  {"event": "exit"}

Usage: python dcs_peer.py CONFIG_JSON HOLD_SECONDS
CONFIG_JSON is Patroni's configuration (scope, name, ttl, loop_wait, retry_timeout and one of
kubernetes / etcd3 / consul). It holds the leader key for HOLD_SECONDS, renewing it every
loop_wait, then deletes it. It stops early, releasing, when stdin closes.
"""
import json
import logging
import platform
import sys
import threading
import time

from patroni.version import __version__
from patroni.dcs import get_dcs


def emit(**fields):
    fields['t'] = time.time()
    print(json.dumps(fields), flush=True)


def main():
    config = json.loads(sys.argv[1])
    hold = float(sys.argv[2])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    dcs = get_dcs(config)
    emit(event='version', patroni=__version__, python=platform.python_version(), dcs=type(dcs).__name__)

    cluster = dcs.get_cluster()
    emit(event='cluster', leader=cluster.leader.name if cluster.leader else None)
    ok = dcs.attempt_to_acquire_leader()
    emit(event='acquire', ok=bool(ok))
    if not ok:
        emit(event='exit')
        return

    deadline = time.time() + hold
    while time.time() < deadline and not stop.is_set():
        stop.wait(min(config.get('loop_wait', 10), max(0.0, deadline - time.time())))
        cluster = dcs.get_cluster()
        leader = cluster.leader.name if cluster.leader else None
        renewed = bool(dcs.update_leader(cluster, None)) if leader == config['name'] else False
        emit(event='renew', ok=renewed, leader=leader)
        if not renewed:
            emit(event='exit')
            return

    cluster = dcs.get_cluster()
    emit(event='release', ok=bool(dcs.delete_leader(cluster.leader, None)))
    emit(event='exit')


if __name__ == '__main__':
    main()
