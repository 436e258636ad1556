#!/usr/bin/env bash
# The Debian packages the kind path needs on the host: Debian's Docker engine
# (docker.io, with its containerd and runc) and debootstrap for the base image.
# Their system services are not started: `engine.sh start` runs a private engine.
. "$(dirname "$0")/lib.sh"

missing=()
[[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] || missing+=(docker.io)
[[ -x /usr/sbin/debootstrap ]] || missing+=(debootstrap)
((${#missing[@]})) || exit 0
bash "$REPO_ROOT/tools/apt-install.sh" kind "${missing[@]}" || fail "cannot install the Debian packages ${missing[*]}"
