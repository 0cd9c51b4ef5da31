#!/usr/bin/env node
// Makes sure the etcd server (and etcdctl, for the benchmark) exist before the tests run. On a fresh
// Debian machine as root it installs the Debian packages; otherwise it says exactly what to install.
import { execFileSync, spawnSync } from 'node:child_process';

const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const missing = ['etcd', 'etcdctl'].filter((c) => !have(c) && !process.env[`LEADERLOCK_${c.toUpperCase()}_BIN`]);
if (missing.length === 0) process.exit(0);

const packages = ['etcd-server', 'etcd-client'];
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (isRoot && have('apt-get')) {
  console.error(`leaderlock tests: ${missing.join(', ')} not found; installing Debian packages ${packages.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { stdio: 'inherit', env });
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { stdio: 'inherit', env });
  }
  // Debian's package may start a system etcd on 2379; our tests use their own ports, so it does no harm.
  process.exit(0);
}
console.error(
  `leaderlock tests need the etcd server binary (${missing.join(', ')} not found).\n` +
    `Install it with:  sudo apt-get install etcd-server etcd-client   (Debian/Ubuntu)\n` +
    `or point LEADERLOCK_ETCD_BIN / LEADERLOCK_ETCDCTL_BIN at the binaries.`,
);
process.exit(1);
