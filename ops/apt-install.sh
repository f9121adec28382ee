#!/usr/bin/env bash
# Installs the Debian packages of the missing ones among CHECK:PACKAGE pairs, once, and says so.
# CHECK is a command name, or a file pattern (it has a /) that the installed package provides.
# Root only; anyone else is told which command to run, and the exit status is 1.
#   bash ops/apt-install.sh redis-server:redis-server '/usr/lib/postgresql/*/bin/postgres:postgresql'
set -euo pipefail
need=()
for pair in "$@"; do
  check=${pair%%:*} package=${pair#*:}
  if [[ $check == */* ]]; then
    compgen -G "$check" >/dev/null && continue
  else
    command -v "$check" >/dev/null 2>&1 && continue
  fi
  need+=("$package")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${need[*]} (as root: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
