#!/usr/bin/env bash
# Builds the real servers and peers of the second test tier (issue 14) from their published
# packages, into an ignored cache folder. Idempotent: a target whose binary and version stamp are
# present is not rebuilt. Pinned versions only; a failed build prints the command and the end of
# its log and the script exits non-zero (the test tier shows that message and fails).
#
#   scripts/real/build.sh [target...]      targets: kube etcd consul patroni peer (default: all)
#
# Environment: LEADERLOCK_REAL_CACHE (default <repo>/.cache/real).
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LEADERLOCK_REAL_CACHE:-$ROOT/.cache/real}"
BIN="$CACHE/bin"
LOGS="$CACHE/logs"
mkdir -p "$BIN" "$LOGS" "$CACHE/src"

# ---- pinned versions (the only place they are named) ----
KUBE_VERSION=v1.36.3            # k8s.io/kubernetes; its staging modules are published as v0.36.3
KUBE_STAGING_VERSION=v0.36.3
ETCD_VERSION=v3.6.16            # go.etcd.io/etcd/server/v3 + etcdctl
CONSUL_VERSION=v1.16.3          # github.com/hashicorp/consul, released 2023, MPL-2.0 (checked below)
PATRONI_VERSION=4.1.5           # PyPI patroni[etcd3,consul,kubernetes,psycopg3]
# patroni.dcs imports psycopg at load time (no PostgreSQL server is used): the psycopg3 extra
# brings psycopg[binary], whose wheel carries libpq.
PATRONI_EXTRAS=etcd3,consul,kubernetes,psycopg3
CLIENTGO_VERSIONS="v0.33.13 v0.37.2"   # the client-go leaderelection peer, old and current release path

export GOMODCACHE="$CACHE/gomod"
export GOPATH="$CACHE/gopath"
export GOFLAGS="-trimpath -mod=mod -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

FAILED=()

stamp_ok() { # name version -> 0 when bin/<name> exists and was built from <version>
  [[ -x "$BIN/$1" && "$(cat "$BIN/$1.version" 2>/dev/null)" == "$2" ]]
}
stamp() { echo "$2" >"$BIN/$1.version"; }

run() { # log-name command... : runs niced, output to the log; on failure prints the command and the log tail
  local log="$LOGS/$1.log"; shift
  echo "  \$ $*" >>"$log"
  if ! nice -n 10 "$@" >>"$log" 2>&1; then
    echo "build FAILED: $*" >&2
    echo "  (last lines of $log)" >&2
    tail -n 25 "$log" | sed 's/^/  | /' >&2
    return 1
  fi
}

fail() { FAILED+=("$1"); echo "$1: $2" >"$CACHE/FAILED-$1"; echo "real-servers build: $1 FAILED ($2)" >&2; }
ok() { rm -f "$CACHE/FAILED-$1" "$CACHE/UNAVAILABLE-$1"; echo "real-servers build: $1 ok ($2)"; }
# A server that cannot be built from what this machine's registries serve (not a broken build): its
# tests are skipped with this reason, printed in their summary, and the tier does not fail for it.
unavailable() { rm -f "$CACHE/FAILED-$1"; echo "$2" >"$CACHE/UNAVAILABLE-$1"; echo "real-servers build: $1 UNAVAILABLE here ($2)" >&2; }

build_kube() {
  if stamp_ok kube-apiserver "$KUBE_VERSION" && stamp_ok kubectl "$KUBE_VERSION"; then ok kube "$KUBE_VERSION, cached"; return; fi
  local dir="$CACHE/src/kube-wrapper" log=kube
  rm -rf "$dir"; mkdir -p "$dir"; : >"$LOGS/$log.log"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging
  # paths, which a dependency's replace lines cannot do: map each to its published release here.
  run $log go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" || { fail kube "go mod download k8s.io/kubernetes@$KUBE_VERSION"; return; }
  local kmod="$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod"
  {
    echo "module leaderlock.local/kube-wrapper"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    grep -E '=> \./staging/src/' "$kmod" | awk -v v="$KUBE_STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
  } >"$dir/go.mod"
  (cd "$dir" && run $log go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" "k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION") \
    || { fail kube "go get in the wrapper module $dir (see $LOGS/$log.log)"; return; }
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
  ld="$ld -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
  (cd "$dir" && run $log go build -ldflags "$ld" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver) \
    || { fail kube "go build k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION (see $LOGS/$log.log)"; return; }
  stamp kube-apiserver "$KUBE_VERSION"
  (cd "$dir" && run $log go build -ldflags "$ld" -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl) \
    || { fail kube "go build k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION (see $LOGS/$log.log)"; return; }
  stamp kubectl "$KUBE_VERSION"
  ok kube "$KUBE_VERSION"
}

# A throwaway main module that requires <module>@<version> and builds its main packages: a
# dependency's replace lines (etcd's ../api, Consul's ./api) are ignored there, so the build uses
# the published versions its go.mod requires.
wrapper_build() { # log dir module version pkg:out...
  local log=$1 dir=$2 mod=$3 ver=$4; shift 4
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module leaderlock.local/%s-wrapper\n\ngo 1.26.0\n' "$log" >"$dir/go.mod"
  local pkgs=() p
  for p in "$@"; do pkgs+=("${p%%:*}@$ver"); done
  (cd "$dir" && run "$log" go get "${pkgs[@]}") || return 1
  for p in "$@"; do
    (cd "$dir" && run "$log" go build -ldflags "-s -w" -o "$BIN/${p##*:}" "${p%%:*}") || return 1
  done
}

build_etcd() {
  if stamp_ok etcd "$ETCD_VERSION" && stamp_ok etcdctl "$ETCD_VERSION"; then ok etcd "$ETCD_VERSION, cached"; return; fi
  : >"$LOGS/etcd.log"
  wrapper_build etcd "$CACHE/src/etcd-wrapper" go.etcd.io/etcd "$ETCD_VERSION" \
    go.etcd.io/etcd/server/v3:etcd go.etcd.io/etcd/etcdctl/v3:etcdctl \
    || { fail etcd "go build go.etcd.io/etcd/server/v3@$ETCD_VERSION (see $LOGS/etcd.log)"; return; }
  stamp etcd "$ETCD_VERSION"; stamp etcdctl "$ETCD_VERSION"
  ok etcd "$ETCD_VERSION"
}

# Consul moved to the BUSL after 1.16; only an MPL-2.0 release may be built. Every
# github.com/hashicorp/consul* module in the build list must carry the MPL-2.0 LICENSE.
consul_licenses_ok() {
  local dir=$1 bad=0 line mod mdir
  while read -r mod mdir; do
    [[ -z "$mdir" ]] && continue
    if ! grep -q "Mozilla Public License, version 2.0" "$mdir/LICENSE" 2>/dev/null; then
      echo "refusing $mod: $mdir/LICENSE is not the MPL-2.0" >&2; bad=1
    fi
  done < <(cd "$dir" && go list -m -f '{{.Path}}@{{.Version}} {{.Dir}}' all 2>/dev/null | grep '^github.com/hashicorp/consul[@/]')
  return $bad
}

build_consul() {
  if stamp_ok consul "$CONSUL_VERSION"; then ok consul "$CONSUL_VERSION, cached"; return; fi
  local dir="$CACHE/src/consul-wrapper" log=consul
  : >"$LOGS/$log.log"
  run $log go mod download -json "github.com/hashicorp/consul@$CONSUL_VERSION" || { fail consul "go mod download github.com/hashicorp/consul@$CONSUL_VERSION"; return; }
  local released
  released=$(grep -o '"Time":"[0-9]*' "$GOMODCACHE/cache/download/github.com/hashicorp/consul/@v/$CONSUL_VERSION.info" | cut -d'"' -f4)
  [[ "$released" == 2023 ]] || { fail consul "$CONSUL_VERSION was not released in 2023 ($released)"; return; }
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module leaderlock.local/consul-wrapper\n\ngo 1.26.0\n' >"$dir/go.mod"
  if ! (cd "$dir" && run $log go get "github.com/hashicorp/consul@$CONSUL_VERSION"); then
    # Modules the Go module proxy here refuses (its checksum lookup answers 404), by name.
    local refused
    refused=$(grep -o 'verifying module: [^ ]*@[^:]*' "$LOGS/$log.log" | sed 's/verifying module: //' | sort -u | tr '\n' ' ')
    if [[ -n "$refused" ]]; then
      # Every 1.16.x release needs github.com/hashicorp/consul/envoyextensions and hcp-sdk-go, which the
      # proxy here does not serve (envoyextensions is listed as not an open-source licence): no real
      # Consul can be built on these machines. Said loudly, not failed on every run.
      unavailable consul "the Go module proxy refuses ${refused}needed by github.com/hashicorp/consul@$CONSUL_VERSION (see $LOGS/$log.log)"
    else
      fail consul "cd $dir && go get github.com/hashicorp/consul@$CONSUL_VERSION failed (see $LOGS/$log.log)"
    fi
    return
  fi
  consul_licenses_ok "$dir" || { fail consul "a github.com/hashicorp/consul module in the build is not MPL-2.0; refusing to build"; return; }
  (cd "$dir" && run $log go build -ldflags "-s -w -X github.com/hashicorp/consul/version.GitCommit=$CONSUL_VERSION -X github.com/hashicorp/consul/version.Version=${CONSUL_VERSION#v} -X github.com/hashicorp/consul/version.VersionPrerelease=" -o "$BIN/consul" github.com/hashicorp/consul) \
    || { fail consul "go build github.com/hashicorp/consul@$CONSUL_VERSION (see $LOGS/$log.log)"; return; }
  stamp consul "$CONSUL_VERSION"
  ok consul "$CONSUL_VERSION (MPL-2.0)"
}

build_patroni() {
  local venv="$CACHE/patroni-venv"
  if [[ -x "$venv/bin/python" && "$(cat "$venv/.version" 2>/dev/null)" == "$PATRONI_VERSION[$PATRONI_EXTRAS]" ]]; then ok patroni "$PATRONI_VERSION, cached"; return; fi
  : >"$LOGS/patroni.log"
  rm -rf "$venv"
  run patroni python3 -m venv "$venv" || { fail patroni "python3 -m venv $venv (Debian: apt-get install python3-venv)"; return; }
  run patroni "$venv/bin/pip" install --disable-pip-version-check --no-input "patroni[$PATRONI_EXTRAS]==$PATRONI_VERSION" \
    || { fail patroni "pip install patroni[$PATRONI_EXTRAS]==$PATRONI_VERSION (see $LOGS/patroni.log)"; return; }
  "$venv/bin/python" -c "import patroni.dcs.etcd3, patroni.dcs.consul, patroni.dcs.kubernetes" >>"$LOGS/patroni.log" 2>&1 \
    || { fail patroni "Patroni's DCS modules do not import (see $LOGS/patroni.log)"; return; }
  echo "$PATRONI_VERSION[$PATRONI_EXTRAS]" >"$venv/.version"
  ok patroni "$PATRONI_VERSION"
}

# The client-go leaderelection peer (test/peers/client-go), once per client-go release: the
# release path of leaderelection changed in v0.34, so both sides of that change are built.
build_peer() {
  local v src="$ROOT/test/peers/client-go"
  for v in $CLIENTGO_VERSIONS; do
    local name="clientgo-peer-$v"
    if stamp_ok "$name" "$v" && [[ "$BIN/$name" -nt "$src/main.go" ]]; then ok "$name" "client-go $v, cached"; continue; fi
    local dir="$CACHE/src/$name"
    : >"$LOGS/$name.log"
    rm -rf "$dir"; mkdir -p "$dir"; cp "$src/main.go" "$dir/"
    printf 'module leaderlock.local/clientgo-peer\n\ngo 1.26.0\n' >"$dir/go.mod"
    (cd "$dir" && run "$name" go get "k8s.io/client-go@$v" "k8s.io/api@$v" "k8s.io/apimachinery@$v" && run "$name" go mod tidy) \
      || { fail "$name" "go get k8s.io/client-go@$v (see $LOGS/$name.log)"; continue; }
    (cd "$dir" && run "$name" go build -ldflags "-s -w" -o "$BIN/$name" .) \
      || { fail "$name" "go build of test/peers/client-go against client-go $v (see $LOGS/$name.log)"; continue; }
    stamp "$name" "$v"
    ok "$name" "client-go $v"
  done
}

main() {
  local TARGETS=("$@") t
  [[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(kube etcd consul patroni peer)
  for t in "${TARGETS[@]}"; do
    case "$t" in
      kube) build_kube ;;
      etcd) build_etcd ;;
      consul) build_consul ;;
      patroni) build_patroni ;;
      peer) build_peer ;;
      *) echo "unknown target $t (kube etcd consul patroni peer)" >&2; exit 2 ;;
    esac
  done

  if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "real-servers build: FAILED: ${FAILED[*]} (logs in $LOGS)" >&2
    exit 1
  fi
}

# One line, read whole before it runs: editing this file during a build cannot derail it.
main "$@"; exit $?
