#!/usr/bin/env bash
# localhost/debian:<suite>: the base of every image this path builds, a minimal
# Debian made by debootstrap from the host's own apt mirror (no registry holds
# a base image we could pull). The rootfs tarball is cached; the image is
# imported from it when the engine lacks it.
. "$(dirname "$0")/lib.sh"

tarball=$KIND_CACHE/rootfs-$DEBIAN_SUITE.tar
if $DOCKER image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1; then
  log "$DEBIAN_IMAGE present"
  exit 0
fi
if [[ ! -s $tarball ]]; then
  need_disk_gb 2 "the Debian rootfs"
  # The first mirror of the host's apt sources (deb822 or one-line format).
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -n $mirror ]] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $mirror ]] || fail "no apt mirror found in the host's apt sources"
  log "debootstrap $DEBIAN_SUITE (minbase; about 2 min)"
  rootfs=$KIND_CACHE/build/rootfs-$DEBIAN_SUITE
  rm -rf "$rootfs" && mkdir -p "$rootfs"
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" "$mirror" >"$KIND_CACHE/build/debootstrap.log" 2>&1 \
    || { tail -5 "$KIND_CACHE/build/debootstrap.log" >&2; fail "debootstrap $DEBIAN_SUITE from the host's mirror"; }
  # The host's apt sources (with its updates and security suites), so that the
  # images install the same package versions as the local stack.
  rm -f "$rootfs/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null \
    || cp /etc/apt/sources.list "$rootfs/etc/apt/sources.list"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90no-recommends"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$rootfs"
fi
$DOCKER import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' "$tarball" "$DEBIAN_IMAGE" >/dev/null || fail "docker import of $tarball"
log "$DEBIAN_IMAGE imported"
