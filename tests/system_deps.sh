#!/usr/bin/env bash
# System packages the suite needs beyond Python: installed once, only when missing.
#   chromium    browser tests (Playwright drives Debian's build; it cannot download its own)
#   prometheus  promtool for the alert-rule tests, and a real Prometheus for the scrape test
# plus what `make serve` needs (ops/system_deps.sh: nginx, openssl), for the production-topology tests.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
exec bash "$(dirname "$0")/../ops/system_deps.sh" "${need[@]}"
