#!/bin/sh
# Lays out the runtime image's files under OUT, the same way for both builds:
#   deploy/Dockerfile (builder stage)        OUT/rootfs: binary, network files, passwd
#   deploy/docker/build-local.sh (host)      ... plus the shared libraries (--with-libs)
# and OUT/data, the /data volume's mount point (owned by the coldchain user).
#
# usage: stage-rootfs.sh BINARY REPO_ROOT OUT [--with-libs]
set -eu
binary=$1
repo=$2
out=$3
with_libs=${4:-}

uid=10001
gid=10001

rm -rf "$out"
mkdir -p "$out/rootfs/usr/local/bin" "$out/rootfs/etc/coldchain" "$out/rootfs/tmp" "$out/data"
cp "$binary" "$out/rootfs/usr/local/bin/coldchain"
chmod 0755 "$out/rootfs/usr/local/bin/coldchain"
cp "$repo/deploy/network.toml" "$repo/deploy/network.compose.toml" "$out/rootfs/etc/coldchain/"
chmod 0644 "$out/rootfs/etc/coldchain/"*.toml
chmod 1777 "$out/rootfs/tmp"

# The accounts of the image: root, nobody and the non-root user the services run as. The
# same files whatever the base image (debian:bookworm-slim, distroless/cc or scratch).
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > "$out/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$out/rootfs/etc/group"
echo "coldchain:x:$uid:$gid:coldchain:/data:/sbin/nologin" >> "$out/rootfs/etc/passwd"
echo "coldchain:x:$gid:" >> "$out/rootfs/etc/group"
chmod 0644 "$out/rootfs/etc/passwd" "$out/rootfs/etc/group"

if [ -n "$with_libs" ]; then
    # Every shared library the binary loads, at the path the loader looks for it, plus the
    # loader itself: what gcr.io/distroless/cc or debian:bookworm-slim provide.
    ldd "$binary" | awk '/=> \//{print $3} /^\t\/.*ld-linux/{print $1}' | sort -u | while read -r lib; do
        mkdir -p "$out/rootfs$(dirname "$lib")"
        cp -L "$lib" "$out/rootfs$lib"
    done
    # glibc resolves users and hosts through nsswitch; without it, files are used anyway.
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$out/rootfs/etc/nsswitch.conf"
fi
