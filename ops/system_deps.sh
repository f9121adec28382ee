#!/usr/bin/env bash
# System packages `make serve` needs beyond Python, installed once, only when missing:
#   nginx    the reverse proxy in front of gunicorn and daphne (TLS, one port, static files)
#   openssl  makes the self-signed certificate when no SERVE_TLS_CERT is given
# Package names given as arguments are installed in the same apt run (tests/system_deps.sh
# passes the test suite's). Debian's nginx package also enables the system's own nginx service
# (port 80) where a service manager runs one; `make serve` starts its own instance, not that one.
set -euo pipefail
need=("$@")
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${need[*]} (run: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
