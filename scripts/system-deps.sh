#!/usr/bin/env bash
# Browser tests need Debian's chromium; PostgreSQL tests need PostgreSQL's server binaries
# (initdb, pg_ctl). Install them when we can (root on Debian); otherwise say what to install.
set -u
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
pg_bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && pg_bin=$d; done
command -v initdb >/dev/null 2>&1 || [ -n "$pg_bin" ] || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ${missing[*]} with apt-get (needed by the browser and PostgreSQL tests)..."
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    && exit 0
  echo "apt-get could not install ${missing[*]}."
fi
case "$(uname -s)" in
  Darwin) echo "Tests that need ${missing[*]} will be skipped: install them with 'brew install --cask chromium' and 'brew install postgresql@15'." ;;
  *) echo "Tests that need ${missing[*]} will be skipped: install them with 'sudo apt-get install ${missing[*]}'." ;;
esac
exit 0
