#!/usr/bin/env bash
# One-time setup on Debian 12: system packages, the virtualenv, P4Runtime bindings.
# Safe to run again; every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

APT_PACKAGES=(python3-venv python3-dev mininet openvswitch-switch nftables iperf3
              iproute2 iputils-ping ethtool tcpdump procps psmisc pmacct nfdump
              chromium chromium-driver prometheus)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "need root to install: ${missing[*]}"; exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's python3 so that Mininet's own module (from the mininet package) is importable.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
say "installing Python requirements"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
# p4runtime-shell pins protobuf<3.21 and an old p4runtime package; we use only its
# client class, on the modern bindings generated below, so it goes in without its pins.
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps p4runtime-shell==0.0.6
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e .
say "generating P4Runtime Python bindings"
"$VENV/bin/python" tools/gen_p4runtime_bindings.py
say "ready: $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])') in $VENV"
