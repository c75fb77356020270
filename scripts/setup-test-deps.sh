#!/usr/bin/env bash
# Installs the Debian packages and starts the services Vigil's tests use.
# Idempotent and quiet when everything is already in place. Without root it
# installs nothing; the tests that need what is missing skip and say why.
set -euo pipefail

need_pkgs=()
command -v setfacl >/dev/null || need_pkgs+=(acl)
command -v setfattr >/dev/null || need_pkgs+=(attr)
command -v setcap >/dev/null || need_pkgs+=(libcap2-bin)
command -v sqlite3 >/dev/null || need_pkgs+=(sqlite3)
command -v psql >/dev/null || need_pkgs+=(postgresql-client)
command -v inotifywait >/dev/null || need_pkgs+=(inotify-tools)

if [ "${#need_pkgs[@]}" -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "setup-test-deps: installing ${need_pkgs[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
	else
		echo "setup-test-deps: not root, not installing ${need_pkgs[*]}; tests needing them will skip" >&2
	fi
fi

# PostgreSQL for the store conformance suite: start it if it is installed
# but down. Tests skip with a message if it is not reachable at all.
if [ "$(id -u)" -eq 0 ] && command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
	if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
		echo "setup-test-deps: starting PostgreSQL" >&2
		pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
		for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	fi
fi
