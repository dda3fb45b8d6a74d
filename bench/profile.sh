#!/bin/bash
# The per-checkout figures of the README's "Benchmarks", for one variant of
# ../shared/bench-peers' front (its #TAG lines switched on, as run.sh does):
#
#   bench/profile.sh instructions TAG   valgrind --tool=callgrind, one
#       process: (instructions at 2N checkouts - at N) / N, N = 1000
#   bench/profile.sh syscalls TAG       strace -c of the worker over
#       4 x N checkouts on 4 connections at once: system calls per checkout
#
# TAG: NONE (plain), MIRROR, MTLS, PB (the module), PTLS, NM (nomatch).
# MODULE_SO= the module (build/ngx_http_postback_module.so); needs nginx,
# curl, openssl, valgrind, strace.  Checkouts go one after the other, so
# the figures are counts, not speeds.
set -eu
WHAT=$1; TAG=$2; N=${N:-1000}
HERE=$(cd "$(dirname "$0")" && pwd)
PEERS=${BENCH_PEERS:-$HERE/../../shared/bench-peers}
SO=${MODULE_SO:-$HERE/../build/ngx_http_postback_module.so}
W=$(mktemp -d /tmp/pb-profile.XXXX)
trap '[ -f $W/backend.pid ] && kill $(cat $W/backend.pid) 2>/dev/null; rm -rf $W' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -days 2 -keyout "$W/receiver.key" -out "$W/receiver.pem" 2>/dev/null
chmod 755 "$W"; chmod 644 "$W/receiver.pem"
sed "s#PREFIX#$W#g" "$PEERS/backend.conf" > "$W/backend.conf"
nginx -p "$W" -c "$W/backend.conf" -g "" 2>/dev/null
sed -e "s#PREFIX#$W#g" -e "s/^#$TAG//" -e "s#MODULE_SO#$SO#" \
    -e '/^#[A-Z]\{2,\} /d' "$PEERS/front.conf" > "$W/front.conf"

# curl's list of $1 checkouts, sent one after the other on one connection
checkout_list() {
    local i
    for ((i = 0; i < $1; i++)); do
        echo "url = http://127.0.0.1:19000/api/checkout"
        echo "output = /dev/null"
    done > "$W/curl-$1.cfg"
}

checkouts() {
    checkout_list "$1"
    curl -s -K "$W/curl-$1.cfg"
}

# instructions of one front process serving $1 checkouts
callgrind_total() {
    sed -e '1i master_process off;' -e 's/^daemon on;/daemon off;/' \
        "$W/front.conf" > "$W/front-cg.conf"
    valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" \
        nginx -p "$W" -c "$W/front-cg.conf" 2>/dev/null &
    local pid=$! i
    for i in $(seq 100); do
        curl -s -o /dev/null http://127.0.0.1:19000/warm && break
        sleep 0.2
    done
    checkouts "$1"
    sleep 2
    kill -QUIT $pid; wait $pid || true
    callgrind_annotate "$W/cg.out" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

case $WHAT in
instructions)
    a=$(callgrind_total "$N"); b=$(callgrind_total $((2 * N)))
    echo "$TAG: $(( (b - a) / N )) instructions per checkout"
    ;;
syscalls)
    nginx -p "$W" -c "$W/front.conf"
    sleep 0.5
    curl -s -o /dev/null http://127.0.0.1:19000/warm
    worker=$(pgrep -f "nginx: worker" -P "$(cat "$W/front.pid")")
    strace -c -f -p "$worker" -o "$W/strace.txt" & spid=$!
    sleep 0.5
    checkout_list "$N"
    pids=""
    for i in 1 2 3 4; do curl -s -K "$W/curl-$N.cfg" & pids="$pids $!"; done
    wait $pids
    sleep 1
    kill -INT $spid; wait $spid || true
    kill "$(cat "$W/front.pid")"
    awk -v n=$((4 * N)) -v tag="$TAG" '
        $NF == "total" { printf "%s: %.2f system calls per checkout\n", tag, $4 / n }
        $1 ~ /^[0-9.]+$/ && $NF != "total" && $4 / n >= 0.05 {
            printf "  %-12s %.2f\n", $NF, $4 / n }' "$W/strace.txt"
    ;;
*)
    echo "usage: $0 instructions|syscalls TAG" >&2; exit 2
    ;;
esac
