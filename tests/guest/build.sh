#!/bin/bash
# Build the stillpoint test guest: a Debian kernel and a small initramfs with
# busybox, qemu-guest-agent, chattr and gtool (tests/guest/gtool.c), from
# Debian packages only. Nothing is installed on the host: packages are
# fetched with `apt-get download` and unpacked with `dpkg -x`.
#
# Usage: tests/guest/build.sh [CACHE_ROOT]
#   CACHE_ROOT defaults to ${STILLPOINT_GUEST_CACHE:-/var/cache/stillpoint-test-guest}
# Prints the build directory (holding vmlinuz, initrd.img, kver) as its last
# line on stdout; everything else goes to stderr.
#
# Cache: a build lives in CACHE_ROOT/<key>, key = hash of this script, init,
# gtool.c and the exact versions of the Debian packages used. Resolving those
# versions with apt-cache takes ~2 s here (apt's binary cache is disabled on
# Debian container images), so a cheap stamp (the same files + the size and
# mtime of apt's package lists) remembers which key it resolved to: a cached
# build returns in milliseconds, and an `apt-get update` that brings a new
# kernel makes the next run resolve again and rebuild.
#
# The directory and files are world-readable (0755/0644) because QEMU runs as
# libvirt-qemu and opens the kernel and initrd itself.
set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${1:-${STILLPOINT_GUEST_CACHE:-/var/cache/stillpoint-test-guest}}
inputs=("$here/build.sh" "$here/init" "$here/gtool.c")
# Modules the guest loads; their dependencies come from modules.dep. The TPM
# (CRB, TIS) drivers, devtmpfs and the 8250 serial console are built in.
modules=(virtio_pci virtio_blk virtio_console crc32c_generic ext4 efivarfs)

log() { echo "build.sh: $*" >&2; }

mkdir -p "$cache_root/stamps"
chmod 0755 "$cache_root"

stamp=$( { sha256sum "${inputs[@]}" | cut -d' ' -f1
           stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* 2>/dev/null || true
         } | sha256sum | cut -c1-16)
if [[ -f $cache_root/stamps/$stamp ]]; then
    dir=$cache_root/$(cat "$cache_root/stamps/$stamp")
    if [[ -f $dir/vmlinuz && -f $dir/initrd.img && -f $dir/kver ]]; then
        echo "$dir"
        exit 0
    fi
fi

# --- resolve exact package versions -----------------------------------------
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null |
               awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'; }
kpkg=$(kernel_pkg)
if [[ -z $kpkg ]]; then
    log "apt has no package lists yet: running apt-get update"
    apt-get update -qq >&2
    kpkg=$(kernel_pkg)
fi
[[ -n $kpkg ]] || { log "cannot resolve the kernel package of linux-image-amd64"; exit 1; }
pkgs=("$kpkg" busybox-static qemu-guest-agent)
# "pkg=version" for each, from the candidates apt would download.
mapfile -t pinned < <(apt-cache policy "${pkgs[@]}" |
    awk '/^[^ ]/ { p = $1; sub(/:$/, "", p) } $1 == "Candidate:" { print p "=" $2 }')
for p in "${pinned[@]}"; do
    [[ $p != *"=(none)" ]] || { log "no candidate version for ${p%=*}"; exit 1; }
done
[[ ${#pinned[@]} -eq ${#pkgs[@]} ]] || { log "could not resolve: ${pkgs[*]}"; exit 1; }

key=$( { sha256sum "${inputs[@]}" | cut -d' ' -f1; printf '%s\n' "${pinned[@]}"; } |
       sha256sum | cut -c1-16)
dir=$cache_root/$key
if [[ -f $dir/vmlinuz && -f $dir/initrd.img && -f $dir/kver ]]; then
    echo "$key" > "$cache_root/stamps/$stamp"
    echo "$dir"
    exit 0
fi

# --- build --------------------------------------------------------------------
log "building guest $key from: ${pinned[*]}"
work=$(mktemp -d "$cache_root/.work-$key.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"

# Download as root into our own folder (the _apt sandbox user cannot write it).
(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "${pinned[@]}" >&2)
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/x"; done

kver=$(ls "$work/x/lib/modules")
[[ $(wc -w <<<"$kver") -eq 1 ]] || { log "expected one kernel, got: $kver"; exit 1; }
log "kernel $kver: depmod on the unpacked tree"
busybox depmod -b "$work/x" "$kver"

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,run,tmp,data,root}
mkdir -p "$root/var" && ln -s ../run "$root/var/run"   # qemu-ga's pid and state

# busybox: one symlink per applet, so /bin/sh exists for the kernel to run
# /init and for qemu-ga's guest-exec.
cp "$work/x/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list-full); do
    [[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
done

cp "$work/x/usr/sbin/qemu-ga" "$root/usr/sbin/qemu-ga"
cp /usr/bin/chattr "$root/usr/bin/chattr"
gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/gtool" "$here/gtool.c"

# Shared libraries of the dynamic binaries, from the host: same Debian release,
# so the host's copies are the packaged ones. cp -L stores each under its
# soname path as ldd prints it (e.g. /lib/x86_64-linux-gnu/libglib-2.0.so.0).
for bin in "$root/usr/sbin/qemu-ga" "$root/usr/bin/chattr"; do
    if ldd "$bin" | grep -q 'not found'; then
        log "missing libraries for $bin:"; ldd "$bin" >&2; exit 1
    fi
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done

# Kernel modules: the wanted ones and everything modules.dep says they need,
# then a depmod of the small tree so busybox modprobe loads them in order.
mdir=lib/modules/$kver
mkdir -p "$root/$mdir"
cp "$work/x/$mdir"/modules.{order,builtin,builtin.modinfo} "$root/$mdir/"
for m in "${modules[@]}"; do
    line=$(grep -E "/$m\.ko(\.xz|\.zst)?:" "$work/x/$mdir/modules.dep") ||
        { log "module $m not in modules.dep (built in?)"; exit 1; }
    for f in ${line/:/}; do
        mkdir -p "$root/$mdir/$(dirname "$f")"
        cp "$work/x/$mdir/$f" "$root/$mdir/$f"
    done
done
# Debian 12 ships plain .ko files; should a later kernel compress them,
# unpack so busybox insmod never has to.
find "$root/$mdir" -name '*.ko.xz' -exec xz -d {} +
busybox depmod -b "$root" "$kver"

cp "$here/init" "$root/init"
chmod 0755 "$root/init"
# qemu-ga's guest-shutdown runs /sbin/shutdown -h|-r ... +0; busybox init
# performs the actual halt/reboot (running inittab's shutdown actions).
cat > "$root/sbin/shutdown" <<'EOF'
#!/bin/sh
case " $* " in *" -r "*) exec /sbin/reboot ;; *) exec /sbin/poweroff ;; esac
EOF
chmod 0755 "$root/sbin/shutdown"

out=$work/out
mkdir -p "$out"
cp "$work/x/boot/vmlinuz-$kver" "$out/vmlinuz"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 -n > "$out/initrd.img"
echo "$kver" > "$out/kver"
printf '%s\n' "${pinned[@]}" > "$out/packages"
chmod 0755 "$out"
chmod 0644 "$out"/*

# Publish atomically; if a concurrent build won the race, keep theirs.
[[ -f $dir/initrd.img ]] || rm -rf "$dir"   # leftovers of an interrupted build
mv -T "$out" "$dir" 2>/dev/null || [[ -f $dir/initrd.img ]]
echo "$key" > "$cache_root/stamps/$stamp"
log "initrd $(du -h "$dir/initrd.img" | cut -f1), kernel $(du -h "$dir/vmlinuz" | cut -f1)"
echo "$dir"
