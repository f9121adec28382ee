#!/usr/bin/env bash
# System packages the suite needs beyond Python: installed once, only when missing (as root;
# anyone else is told the command). tests/services.py then starts Redis and PostgreSQL.
#   chromium      browser tests (Playwright drives Debian's build; it cannot download its own)
#   prometheus    promtool for the alert-rule tests, and a real Prometheus for the scrape test
#   redis-server  the suite's Redis, and the private ones the fault tests kill
#   postgresql    the suite's database server (DATABASE_URL), and the private clusters of the fault tests
#   nginx, openssl  what `make serve` needs, for the production-topology tests
set -euo pipefail
cd "$(dirname "$0")/.."
postgres='/usr/lib/postgresql/*/bin/postgres'
if ! compgen -G "$postgres" >/dev/null && [ "$(id -u)" = 0 ]; then
  # The cluster Debian creates as it installs the server trusts local connections (user postgres,
  # no password), as on every machine of the project. Only that install reads this file.
  trust=/etc/postgresql-common/createcluster.d/coldchain-trust.conf
  mkdir -p "${trust%/*}"
  echo "initdb_options = '--auth=trust'" >"$trust"
  trap 'rm -f "$trust"' EXIT
fi
bash ops/apt-install.sh chromium:chromium promtool:prometheus redis-server:redis-server "$postgres:postgresql" \
  /usr/sbin/nginx:nginx openssl:openssl
