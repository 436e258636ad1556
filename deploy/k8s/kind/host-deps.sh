#!/usr/bin/env bash
# The Debian packages the kind path needs on the host: Debian's Docker engine
# (docker.io, with its containerd and runc) and debootstrap for the base image.
# Their system services are not started: `engine.sh start` runs a private engine.
. "$(dirname "$0")/lib.sh"

missing=()
[[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] || missing+=(docker.io)
[[ -x /usr/sbin/debootstrap ]] || missing+=(debootstrap)
((${#missing[@]})) || exit 0
[[ $(id -u) -eq 0 ]] || fail "missing Debian packages ${missing[*]}: install them as root (apt-get install --no-install-recommends ${missing[*]})"
log "installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '((created_policy)) && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || fail "apt-get update failed"
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || fail "apt-get install ${missing[*]} failed"
