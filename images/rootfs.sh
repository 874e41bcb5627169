#!/bin/sh
# Used by every Dockerfile's build stage: copies the given programs and the shared libraries they
# load (per ldd) into DEST, with an /etc/passwd naming uid 1000 and an empty /tmp, for a final
# `FROM scratch` stage: no shell, no package manager, nothing the programs do not load.
#   rootfs.sh DEST PROGRAM...
set -eu
dest=$1
shift
mkdir -p "$dest/etc" "$dest/tmp"
chmod 1777 "$dest/tmp"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nllmtor:x:1000:1000:LLM-Tor:/nonexistent:/usr/sbin/nologin\n' >"$dest/etc/passwd"
printf 'root:x:0:\nllmtor:x:1000:\n' >"$dest/etc/group"
for prog in "$@"; do
  # -L: a program reached through a symlink (redis-server -> redis-check-rdb) keeps its own name.
  cp --parents -L "$prog" "$dest"
  ldd "$prog" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
    cp --parents -L "$lib" "$dest"
  done
done
