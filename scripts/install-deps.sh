#!/usr/bin/env bash
# Installs what meshhook-stats needs to build, run and test, from Debian 12's packages (and
# npm for the Svelte widgets). Installs only what is missing, so it is quick when all is there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git curl jq python3 procps ca-certificates
  libcivetweb-dev libpqxx-dev libyaml-cpp-dev libspdlog-dev catch2 nlohmann-json3-dev
  libsimdjson-dev libjwt-dev libssl-dev zlib1g-dev libbenchmark-dev
  postgresql-15 postgresql-client-15 postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
  prometheus gcovr wrk hyperfine clang libclang-rt-14-dev clang-format
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Node.js: any installed node >= 18 will do; otherwise Debian's.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # A package-manager run must never start Debian's own Postgres service for us.
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
else
  echo "install-deps: all Debian packages present"
fi

# npm packages of the widgets, when that package exists and is not installed yet.
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$root/dashboards/svelte/package-lock.json" ]; then
  if [ ! -d "$root/dashboards/svelte/node_modules" ] ||
     [ "$root/dashboards/svelte/package-lock.json" -nt "$root/dashboards/svelte/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in dashboards/svelte"
    (cd "$root/dashboards/svelte" && npm ci --no-audit --no-fund)
  fi
fi

# The OpenAPI linter that `make test` runs (tools/openapi-lint), the same way.
if [ -f "$root/tools/openapi-lint/package-lock.json" ]; then
  if [ ! -d "$root/tools/openapi-lint/node_modules" ] ||
     [ "$root/tools/openapi-lint/package-lock.json" -nt "$root/tools/openapi-lint/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in tools/openapi-lint"
    (cd "$root/tools/openapi-lint" && npm ci --no-audit --no-fund)
  fi
fi
