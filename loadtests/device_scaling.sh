#!/usr/bin/env bash
# The one command on a lent 16-core machine: loadtests/scaling.py with the switch on
# Redis + PostgreSQL that it starts itself, against a bare N-process gRPC echo.
#
#   OUT=/tmp/out bash loadtests/device_scaling.sh
#
# It needs the ignored folder .device/ (carried beside the working tree), made on a
# developer machine by `bash loadtests/device_pack.sh`:
#   .device/site.tar.xz    site-packages for CPython 3.12 (the switch's dependencies and
#                          payment_switch's dist-info, whose entry points name its adapters)
#   .device/stores.tar.xz  stores/: Debian bookworm PostgreSQL 15 and Redis 7 binaries, and
#                          stores/lib, the shared libraries they need (their LD_LIBRARY_PATH only)
#   .device/cext312/       switch/*/_*.cpython-312-*.so, the Cython modules built for
#                          CPython 3.12 at their paths in the package, and the sha256 of
#                          their sources
# The switch's Python code is this working tree's switch/ and adapters/, copied into
# $SCALING_RUNTIME/app with the compiled modules beside their Python twins
# (switch/cards/_luhn, switch/cards/_ff1, switch/money/_fees_core).
#
# Settings (environment): SCALING_WORKERS (1,2,4,8,12), SCALING_MODES (batch,unary),
# SCALING_DURATION (5), SCALING_WARMUP (1), SCALING_MAX_SECONDS (300: no point starts
# later), SCALING_PYTHON (python3), SCALING_RUNTIME (/tmp/switch-scaling),
# SCALING_EXTRA_CONFIG (a TOML file added to the switch's configuration; none),
# SCALING_REDIS_CLUSTER (N >= 3: the state in a Redis Cluster of N primaries started
# from the carried redis-server; none: one Redis).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV=$REPO/.device
OUT=${OUT:-/tmp/switch-scaling-out}
WORKERS=${SCALING_WORKERS:-1,2,4,8,12}
MODES=${SCALING_MODES:-batch,unary}
DURATION=${SCALING_DURATION:-5}
WARMUP=${SCALING_WARMUP:-1}
MAX_SECONDS=${SCALING_MAX_SECONDS:-300}
PY=${SCALING_PYTHON:-python3}
RT=${SCALING_RUNTIME:-/tmp/switch-scaling}
EXTRA=${SCALING_EXTRA_CONFIG:+$(realpath "$SCALING_EXTRA_CONFIG")}
CLUSTER=${SCALING_REDIS_CLUSTER:-}

mkdir -p "$OUT" || { echo "DEVICE-SCALING FAILED: cannot create OUT=$OUT"; exit 2; }
exec > >(tee -a "$OUT/device.log") 2>&1
die() {
    echo
    echo "DEVICE-SCALING FAILED at preflight: $*"
    exit 2
}
step() { echo "== $(date -u +%H:%M:%S) $*"; }
started=$SECONDS

step "preflight: $(uname -srm), nproc $(nproc), $(id -un 2>/dev/null || id -u), repo $REPO"
command -v "$PY" >/dev/null || die "no $PY on PATH ($PATH)"
"$PY" -c 'import sys; print("python", sys.version.replace("\n", " "), sys.executable)' || die "$PY does not run"
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' || die "$PY is not CPython 3.12 (the carried wheels are cp312)"
for f in site.tar.xz stores.tar.xz cext312/SOURCES.sha256 cext312/switch; do
    [ -e "$DEV/$f" ] || die "missing $DEV/$f: carry .device"
done

step "unpacking .device into $RT"
rm -rf "$RT" && mkdir -p "$RT/app" || die "cannot make $RT"
chmod 755 "$RT"
"$PY" - "$DEV" "$RT" <<'EOF' || die "unpacking the tarballs failed"
import sys, tarfile
for name in ("site.tar.xz", "stores.tar.xz"):
    with tarfile.open(f"{sys.argv[1]}/{name}") as archive:
        archive.extractall(sys.argv[2], filter="tar")
EOF
cp -r "$REPO/switch" "$RT/app/switch" || die "copying switch/"
# builds of another Python (a working tree that carried them) must not stand beside the 3.12 ones
find "$RT/app/switch" \( -name '*.so' -o -name '_*.c' -o -name '_*.html' -o -name __pycache__ \) -prune -exec rm -rf {} +
cp -r "$DEV/cext312/switch/." "$RT/app/switch/" || die "copying the compiled modules"
cp -r "$REPO/adapters" "$RT/app/switch_adapters" || die "copying adapters/"
find "$RT/app" -name __pycache__ -prune -exec rm -rf {} +
if ! (cd "$REPO" && sha256sum --quiet -c "$DEV/cext312/SOURCES.sha256" >/dev/null 2>&1); then
    echo "WARNING: switch/*/_*.pyx or _*.pxd changed since .device/cext312 was built: the compiled modules may not match"
fi

export PYTHONPATH="$RT/app:$RT/site"
export PYTHONNOUSERSITE=1 PYTHONUNBUFFERED=1
unset SWITCH_NO_EXTENSIONS
# the same check device_pack.sh ran on the pack (loadtests/device_check.py)
check_imports() { (cd /tmp && "$PY" - "$REPO/pyproject.toml" <"$REPO/loadtests/device_check.py"); }
if ! check_imports; then
    # switch.cards._ff1 links libcrypto.so.3: try the carried one (bookworm's OpenSSL 3.0)
    mkdir -p "$RT/pylib" && ln -sf "$RT/stores/lib/libcrypto.so.3" "$RT/pylib/libcrypto.so.3"
    export LD_LIBRARY_PATH="$RT/pylib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "retrying the imports with LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    check_imports || die "Python imports (above)"
fi

PG_BIN=$RT/stores/usr/lib/postgresql/15/bin
missing=$(for f in "$PG_BIN/postgres" "$PG_BIN/initdb" "$RT/stores/usr/bin/redis-check-rdb"; do
    LD_LIBRARY_PATH=$RT/stores/lib ldd "$f" 2>&1 | grep -i "not found"
done | sort -u)
[ -z "$missing" ] || die "store binaries miss libraries: $missing"
LD_LIBRARY_PATH=$RT/stores/lib "$PG_BIN/postgres" --version || die "postgres does not run"
LD_LIBRARY_PATH=$RT/stores/lib "$RT/stores/usr/bin/redis-server" --version || die "redis-server does not run"
if [ "$(id -u)" = 0 ]; then
    id nobody || echo "WARNING: no user nobody; PostgreSQL will run as uid 65534"
fi
step "preflight ok in $((SECONDS - started)) s; scaling: workers $WORKERS, modes $MODES, ${DURATION} s per point${CLUSTER:+, a Redis Cluster of $CLUSTER primaries}"

cd "$RT" || die "cd $RT"
"$PY" "$REPO/loadtests/scaling.py" --workers "$WORKERS" --modes "$MODES" --duration "$DURATION" \
    --warmup "$WARMUP" --max-seconds "$MAX_SECONDS" --start-stores "$RT/stores" --out "$OUT" \
    ${EXTRA:+--extra-config "$EXTRA"} ${CLUSTER:+--redis-cluster "$CLUSTER"}
rc=$?
step "scaling.py exited $rc after $((SECONDS - started)) s in all"
if [ -s "$OUT/scaling.txt" ]; then
    echo
    echo "================ TABLE ($OUT/scaling.txt) ================"
    cat "$OUT/scaling.txt"
else
    echo "DEVICE-SCALING FAILED: no table written (see above and $OUT/logs.tar.gz)"
fi
exit $rc
