#!/usr/bin/env bash
# System packages `make serve` needs beyond Python, installed once, only when missing:
#   nginx    the reverse proxy in front of gunicorn and daphne (TLS, one port, static files)
#   openssl  makes the self-signed certificate when no SERVE_TLS_CERT is given
# Debian's nginx package also enables the system's own nginx service (port 80) where a service
# manager runs one; `make serve` starts its own instance, not that one.
set -euo pipefail
exec bash "$(dirname "$0")/apt-install.sh" /usr/sbin/nginx:nginx openssl:openssl
