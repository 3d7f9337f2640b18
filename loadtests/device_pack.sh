#!/usr/bin/env bash
# Builds the ignored folder .device/ that loadtests/device_scaling.sh needs on a lent
# machine (CPython 3.12 x86_64, no internet), from scratch, on a developer machine:
#
#   bash loadtests/device_pack.sh
#
#   .device/site.tar.xz    site/: the switch's run-time dependencies (pyproject.toml's
#                          [project] dependencies and theirs, at the versions installed in
#                          .venv) unpacked from cp312 manylinux wheels, and payment_switch's
#                          dist-info (its entry points: switch.adapters, switch.simulators)
#   .device/stores.tar.xz  stores/: Debian bookworm's PostgreSQL 15 and Redis 7 binaries
#                          (usr/lib/postgresql/15, usr/share/postgresql/15, usr/bin/redis-*)
#                          and stores/lib, every non-glibc shared library they load
#   .device/cext312/       switch/*/_*.cpython-312-x86_64-linux-gnu.so: the Cython modules
#                          compiled for CPython 3.12, at their paths in the package (beside
#                          their Python twins: switch/cards/_luhn, switch/cards/_ff1,
#                          switch/money/_fees_core), and SOURCES.sha256, the sha256 of
#                          switch/*/_*.pyx and switch/*/_*.pxd
#
# It needs: a Debian bookworm x86_64 host (apt-get download, dpkg -x, ldd), the package
# registries (PyPI for the wheels and the build tools, Debian's mirror for the .debs),
# `make install` done (.venv gives the versions), and a CPython 3.12 (PACK_PYTHON312,
# default pyenv's 3.12.1) with a C compiler and OpenSSL's headers for the Cython modules.
# Compiling and xz -9 take most of its time; the pack must stay well under the 64 MiB
# that the device carries with the working tree.
# It works in a temporary folder and replaces .device only when everything passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV=$REPO/.device
PY312=${PACK_PYTHON312:-/root/.pyenv/versions/3.12.1/bin/python3.12}
VENV_PY=$REPO/.venv/bin/python
# bookworm packages whose files end up in stores/; the libraries' packages are only
# unpacked to find the .so files that ldd names (the check below fails on any that a
# package here does not provide, rather than copying it from this host).
STORE_PACKAGES=(postgresql-15 postgresql-client-15 redis-server redis-tools)
LIB_PACKAGES=(
    libpq5 libssl3 libicu72 libxml2 liblz4-1 libzstd1 liblzma5 zlib1g libsystemd0 libcap2
    libgcrypt20 libgpg-error0 libpam0g libaudit1 libcap-ng0 libgssapi-krb5-2 libkrb5-3
    libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libldap-2.5-0 libsasl2-2 libgnutls30
    libp11-kit0 libffi8 libidn2-0 libunistring2 libtasn1-6 libnettle8 libhogweed6 libgmp10
    libjemalloc2 liblzf1 libatomic1 libstdc++6 libgcc-s1 libreadline8 libtinfo6 libuuid1
)
# glibc's own libraries: every machine that runs python3 has them, matching its loader
GLIBC='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1|libanl\.so\.1)$'

# pip's notes about this host's absent file:// indexes are noise
quiet_pip() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
step() { echo "== $(date -u +%H:%M:%S) $*"; }
die() {
    echo "DEVICE-PACK FAILED: $*" >&2
    exit 1
}
started=$SECONDS

[ "$(uname -m)" = x86_64 ] || die "needs an x86_64 host (the binaries are copied, not cross-built)"
grep -q 'VERSION_CODENAME=bookworm' /etc/os-release || die "needs Debian bookworm (apt-get download)"
"$PY312" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' || die "$PY312 is not CPython 3.12"
"$VENV_PY" -c 'import importlib.metadata as md; md.version("payment-switch")' || die "no $VENV_PY with payment-switch: make install"
for tool in apt-get dpkg ldd xz tar sha256sum strip setpriv git; do
    command -v "$tool" >/dev/null || die "no $tool"
done

WORK=$(mktemp -d /tmp/device-pack.XXXXXX)
pg_pid= redis_pid=
# PostgreSQL: SIGINT is its fast shutdown; each gets 30 s, then SIGKILL
stop_stores() {
    local pid
    [ -z "$pg_pid" ] || kill -INT "$pg_pid" 2>/dev/null || true
    [ -z "$redis_pid" ] || kill -TERM "$redis_pid" 2>/dev/null || true
    for pid in $pg_pid $redis_pid; do
        for _ in $(seq 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pg_pid= redis_pid=
    return 0
}
trap 'stop_stores; rm -rf "$WORK"' EXIT
chmod 755 "$WORK" # apt's _apt user and PostgreSQL's nobody (when root) read in here
OUTDIR=$WORK/device
mkdir -p "$OUTDIR/cext312" "$WORK/src"

step "3.12 build tools and the project's cp312 wheel (compiles switch's Cython modules)"
version_in_venv() { "$VENV_PY" -c "import importlib.metadata as md, sys; print(md.version(sys.argv[1]))" "$1"; }
"$PY312" -m venv "$WORK/py312"
B=$WORK/py312/bin/python
quiet_pip "$B" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "Cython==$(version_in_venv Cython)" "setuptools==$(version_in_venv setuptools)" wheel
# the working tree (tracked and untracked files that git does not ignore), not HEAD
(cd "$REPO" && git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf -) |
    tar -xf - -C "$WORK/src"
(cd "$WORK/src" && env -u SWITCH_CYTHON_DEBUG "$B" -m pip wheel --quiet --disable-pip-version-check \
    --no-deps --no-build-isolation --no-index -w "$WORK/dist" .)
WHEEL=$(ls "$WORK"/dist/payment_switch-*-cp312-*.whl)
"$B" - "$WHEEL" "$WORK/wheel" <<'EOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
EOF
# each compiled module at its path in the package (switch/cards/_luhn.cpython-312-...so)
(cd "$WORK/wheel" && find switch -name '_*.cpython-312-x86_64-linux-gnu.so' -print0 |
    xargs -0 -r cp --parents -t "$OUTDIR/cext312/")
find "$OUTDIR/cext312" -name '*.so' -exec strip --strip-debug {} +
built=$(find "$OUTDIR/cext312" -name '*.so' | wc -l)
[ "$built" = "$(ls "$REPO"/switch/*/_*.pyx | wc -l)" ] || die "$built .so files, not one per switch/*/_*.pyx"
(cd "$REPO" && sha256sum switch/*/_*.pyx switch/*/_*.pxd) >"$OUTDIR/cext312/SOURCES.sha256"

step "site: the run-time dependencies' wheels at .venv's versions"
"$VENV_PY" - >"$WORK/pins.txt" <<'EOF'
# pyproject's [project] dependencies and theirs (extras followed, markers evaluated for
# CPython 3.12 on Linux x86_64), each at the version installed in .venv
import importlib.metadata as md

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

env = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
       "implementation_version": "3.12.3", "platform_python_implementation": "CPython",
       "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}
extras: dict[str, set[str]] = {}
todo = [Requirement(text) for text in md.requires("payment-switch") or []]
todo = [r for r in todo if r.marker is None or r.marker.evaluate({**env, "extra": ""})]
while todo:
    req = todo.pop()
    name = canonicalize_name(req.name)
    if name in extras and set(req.extras) <= extras[name]:
        continue
    extras[name] = extras.get(name, set()) | set(req.extras)
    for text in md.requires(name) or []:
        sub = Requirement(text)
        if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in {"", *extras[name]}):
            todo.append(sub)
for name in sorted(extras):
    print(f"{name}=={md.version(name)}")
EOF
echo "  $(tr '\n' ' ' <"$WORK/pins.txt")"
grep -q '^hiredis==' "$WORK/pins.txt" || die "no hiredis in the pins (redis[hiredis])"
quiet_pip "$VENV_PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
    --python-version 3.12 --implementation cp --abi cp312 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WORK/wheels" -r "$WORK/pins.txt"
[ "$(ls "$WORK"/wheels/*.whl | wc -l)" = "$(wc -l <"$WORK/pins.txt")" ] || die "not one wheel per pin"
"$B" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-index --no-compile \
    --target "$WORK/site" "$WORK"/wheels/*.whl
cp -r "$WORK"/wheel/payment_switch-*.dist-info "$WORK/site/"
# its RECORD lists the wheel's switch/ files, which live in the app folder, not here
distinfo=$(cd "$WORK/site" && ls -d payment_switch-*.dist-info)
grep "^$distinfo/" "$WORK/site/$distinfo/RECORD" >"$WORK/record" && mv "$WORK/record" "$WORK/site/$distinfo/RECORD"
rm -rf "$WORK/site/bin"
find "$WORK/site" -name __pycache__ -prune -exec rm -rf {} +
find "$WORK/site" -type d \( -name tests -o -name test \) -prune -exec rm -rf {} +
find "$WORK/site" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' -o -name '*.cpp' -o -name '*.h' \) -delete
find "$WORK/site" -name '*.so' -exec strip --strip-debug {} +

step "checking site + compiled modules with $PY312 (what device_scaling.sh imports)"
# the app as device_scaling.sh assembles it: this tree's switch/ without its own builds
# (this host's Python), with the 3.12 ones beside their twins
mkdir -p "$WORK/app"
cp -r "$REPO/switch" "$WORK/app/switch"
find "$WORK/app/switch" \( -name '*.so' -o -name '_*.c' -o -name '_*.html' -o -name __pycache__ \) -prune -exec rm -rf {} +
cp -r "$OUTDIR/cext312/switch/." "$WORK/app/switch/"
cp -r "$REPO/adapters" "$WORK/app/switch_adapters"
find "$WORK/app" -name __pycache__ -prune -exec rm -rf {} +
(cd /tmp && PYTHONPATH="$WORK/app:$WORK/site" PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 \
    env -u SWITCH_NO_EXTENSIONS "$PY312" - "$REPO/pyproject.toml" <"$REPO/loadtests/device_check.py"
) || die "the site or the compiled modules do not import (above)"

step "stores: bookworm's PostgreSQL 15 and Redis 7"
mkdir -p "$WORK/debs" "$WORK/root"
download() {
    (cd "$WORK/debs" && apt-get download -q -o APT::Sandbox::User=root "${STORE_PACKAGES[@]}" "${LIB_PACKAGES[@]}" >/dev/null)
}
if ! download; then
    echo "  apt-get download failed: apt-get update, then once more"
    apt-get update -q >/dev/null && download || die "apt-get download ${STORE_PACKAGES[*]} ${LIB_PACKAGES[*]}"
fi
for deb in "$WORK"/debs/*.deb; do
    dpkg -x "$deb" "$WORK/root"
done
S=$WORK/stores
mkdir -p "$S/usr/lib/postgresql" "$S/usr/share/postgresql" "$S/usr/bin" "$S/lib"
cp -a "$WORK/root/usr/lib/postgresql/15" "$S/usr/lib/postgresql/"
cp -a "$WORK/root/usr/share/postgresql/15" "$S/usr/share/postgresql/"
cp -a "$WORK"/root/usr/bin/redis-* "$S/usr/bin/"
# jit is off (llvmjit would need libLLVM, 100+ MiB); sepgsql and pgxml need libselinux and
# libxslt; the man pages, the pgxs build kit and redis-check-aof (a second copy of the
# redis-server binary, which redis-server links to as redis-check-rdb) are not needed to run
rm -rf "$S"/usr/lib/postgresql/15/lib/{llvmjit.so,llvmjit_types.bc,bitcode,pgxs,sepgsql.so,pgxml.so} \
    "$S/usr/share/postgresql/15/man" "$S/usr/bin/redis-check-aof"
for f in postgres initdb pg_ctl psql; do
    [ -x "$S/usr/lib/postgresql/15/bin/$f" ] || die "no $f in postgresql-15/postgresql-client-15"
done
for f in redis-server redis-check-rdb redis-cli; do
    [ -x "$S/usr/bin/$f" ] || die "no usr/bin/$f in redis-server/redis-tools"
done
LIBPATH=$WORK/root/lib/x86_64-linux-gnu:$WORK/root/usr/lib/x86_64-linux-gnu
is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
elves=()
while IFS= read -r -d '' f; do
    is_elf "$f" && elves+=("$f")
done < <(find "$S/usr/lib" "$S/usr/bin" -type f -print0)
for f in "${elves[@]}"; do
    LD_LIBRARY_PATH=$LIBPATH ldd "$f" | awk '$2 == "=>" {print $1, $3}'
done | sort -u >"$WORK/needed"
while read -r name path; do
    [[ $name =~ $GLIBC ]] && continue
    case $path in
    "$WORK"/root/*) cp -L "$path" "$S/lib/$name" ;;
    *) die "$name resolves to $path, outside the unpacked packages: add its package to LIB_PACKAGES" ;;
    esac
done <"$WORK/needed"
chmod 644 "$S"/lib/*
# every ELF file, against stores/lib alone plus this host's glibc
for f in "${elves[@]}"; do
    LD_LIBRARY_PATH=$S/lib ldd "$f" | awk -v f="$f" '$2 == "=>" {print f, $1, $3}'
done | while read -r f name path; do
    [[ $name =~ $GLIBC ]] && continue
    [[ $path == "$S/lib/"* ]] || die "$f: $name -> $path, not stores/lib"
done
echo "  $(ls "$S/lib" | wc -l) libraries in stores/lib, $(du -sh "$S" | cut -f1) unpacked"

step "checking the stores: initdb, postgres and redis-server on free loopback ports"
PG=$S/usr/lib/postgresql/15/bin
LD_LIBRARY_PATH=$S/lib "$PG/postgres" --version
LD_LIBRARY_PATH=$S/lib "$S/usr/bin/redis-server" --version
T=$WORK/storetest
mkdir -m 755 "$T"
mkdir -m 700 "$T/pgdata" "$T/pgsock"
chmod -R a+rX "$S"
as_pg=() # PostgreSQL refuses root: as root, it runs as nobody (as scaling.py --start-stores does)
if [ "$(id -u)" = 0 ]; then
    id nobody >/dev/null || die "no user nobody to run PostgreSQL as"
    as_pg=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
    chown "nobody:$(id -g nobody)" "$T/pgdata" "$T/pgsock"
fi
free_port() { "$PY312" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
redis_port=$(free_port)
export TZ=GMT LC_ALL=C LANG=C
LD_LIBRARY_PATH=$S/lib "${as_pg[@]}" "$PG/initdb" -D "$T/pgdata" -U postgres -A trust -E UTF8 --locale=C \
    --no-sync >"$T/initdb.log" 2>&1 || { cat "$T/initdb.log"; die "initdb"; }
# simple commands in the background (setpriv execs postgres): $! is the server itself
LD_LIBRARY_PATH=$S/lib "${as_pg[@]}" "$PG/postgres" -D "$T/pgdata" -c listen_addresses=127.0.0.1 \
    -c port="$pg_port" -c unix_socket_directories="$T/pgsock" -c jit=off -c timezone=GMT -c shared_buffers=32MB \
    >"$T/pg.log" 2>&1 &
pg_pid=$!
LD_LIBRARY_PATH=$S/lib "$S/usr/bin/redis-server" --bind 127.0.0.1 --port "$redis_port" --save "" \
    --appendonly no --dir "$T" --daemonize no >"$T/redis.log" 2>&1 &
redis_pid=$!
ok=
for _ in $(seq 150); do
    if LD_LIBRARY_PATH=$S/lib "$PG/psql" -XAtq -h 127.0.0.1 -p "$pg_port" -U postgres \
        -c "CREATE TEMP TABLE t (a text); INSERT INTO t VALUES ('x'); SELECT count(*) FROM t" 2>/dev/null | grep -qx 1 &&
        [ "$(LD_LIBRARY_PATH=$S/lib "$S/usr/bin/redis-cli" -p "$redis_port" SET k v 2>/dev/null)" = OK ]; then
        ok=1
        break
    fi
    sleep 0.2
done
stop_stores
[ -n "$ok" ] || {
    tail -20 "$T/pg.log" "$T/redis.log"
    die "PostgreSQL or Redis did not answer"
}
echo "  initdb, postgres (port $pg_port) and redis-server (port $redis_port) answered and stopped"
rm -rf "$T"

step "compressing (xz -9)"
pack() { tar -C "$WORK" --sort=name --owner=0 --group=0 --numeric-owner -cf - "$1" | xz -9 -T1 >"$OUTDIR/$1.tar.xz"; }
pack site
pack stores
rm -rf "$DEV"
mv "$OUTDIR" "$DEV"
du -sh "$DEV"/*
du -sh "$DEV" | sed "s/^/total /"
step "done in $((SECONDS - started)) s: $DEV (carry it with the working tree; see device_scaling.sh)"
