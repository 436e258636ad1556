#!/usr/bin/env bash
# apt-install.sh WHO PACKAGE...: installs Debian packages for the project's
# scripts (WHO names the caller in messages). As root: apt-get, without
# starting the packages' system-wide services (the project runs its own private
# instances: a second RabbitMQ on 5672 or a system dockerd would collide).
# Otherwise: names the packages to install and exits non-zero.
set -euo pipefail
who=$1
shift
if [[ $(id -u) -ne 0 ]]; then
  echo "$who: missing Debian packages: $*" >&2
  echo "  install them with: sudo apt-get install --no-install-recommends $*" >&2
  exit 1
fi
echo "$who: installing $*" >&2
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '((created_policy)) && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "$@" >/dev/null
