#!/usr/bin/env bash
# 68-mirror-inflight: a worker runs at most 512 mirror copies at once (MIRROR_MAX_INFLIGHT).
# One worker; the mirror accepts connections and never answers, so every copy stays in
# flight.  512 requests: 512 copies go out, none dropped; 8 more: their main requests are
# answered as usual, their copies are dropped and counted in upstream_rq_mirror_dropped and
# never reach the mirror.  Once the mirror closes its connections the copies end (failed)
# and a new one goes out again: the cap bounds copies in flight, not copies made.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream main --quiet

# The mirror: accepts and holds every connection without reading, writes how many it
# holds to a file, and closes them all once the file "release" exists.
HOLD_PORT=$(mg_port)
"$PYTHON" -c 'import os, socket, sys
port, count, release = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(1024)
s.settimeout(0.05)
held, total = [], 0
while True:
    try:
        c, _ = s.accept()
        held.append(c)
        total += 1
        with open(count + ".tmp", "w") as f:
            f.write("%d\n" % total)
        os.replace(count + ".tmp", count)
    except socket.timeout:
        pass
    if held and os.path.exists(release):
        for c in held:
            c.close()
        held = []
        os.unlink(release)' "$HOLD_PORT" "$MG_DIR/held" "$MG_DIR/release" &
mg__track $!
echo 0 >"$MG_DIR/held"

mg_start_config <<EOF
workers: 1
timeouts:
  drain: 1s
EOF
mg_resource all <<EOF
$(mg_yaml_gateway)
$(mg_yaml_service main "$UP_MAIN_PORT")
$(mg_yaml_service hold "$HOLD_PORT")
$(mg_yaml_routes)
  - route: [{destination: {host: main}}]
    mirror: {host: hold}
EOF
mg_start

held() { cat "$MG_DIR/held"; }
# shellcheck disable=SC2317 # called through mg_wait_until
held_is() { [ "$(held)" -ge "$1" ]; }
# shellcheck disable=SC2317 # called through mg_wait_until
metric_is() { [ "$(mg_metric "$1")" -ge "$2" ]; }
# all_ok N PATH: N requests on one connection, all answered 200 by the main upstream.
all_ok() {
	assert_eq "$(mg_statuses "$1" "$2" | sort | uniq -c | awk '{ print $1 " x " $2 }' | paste -sd' ')" \
		"$1 x 200" "$1 requests of $2 answered 200"
}

# --- up to the cap: every copy goes out and stays in flight -----------------------------------
all_ok 512 /fill
mg_wait_until 20 held_is 512 || mg_fail "the mirror holds $(held) connections, expected 512"
assert_eq "$(mg_metric upstream_rq_mirror_sent)" 512 "512 copies sent"
assert_eq "$(mg_metric upstream_rq_mirror_dropped)" 0 "none dropped up to the cap"

# --- over the cap: the main requests go on, their copies are dropped and counted -------------
all_ok 8 /over
assert_eq "$(mg_metric upstream_rq_mirror_dropped)" 8 "the 8 copies over the cap are dropped"
assert_eq "$(mg_metric upstream_rq_mirror_sent)" 512 "no copy sent over the cap"
assert_eq "$(mg_upstream_count main '^/over')" 8 "the main upstream answered the 8 requests"
sleep 0.3 # a copy that got through would have connected by now
assert_eq "$(held)" 512 "the mirror got no connection over the cap"

# --- the copies end: room again --------------------------------------------------------------
touch "$MG_DIR/release"
mg_wait_until 20 metric_is upstream_rq_mirror_failed 512 ||
	mg_fail "the 512 copies did not end when the mirror closed: $(mg_metric upstream_rq_mirror_failed) failed"
all_ok 1 /again
mg_wait_until 10 held_is 513 || mg_fail "the copy after the release did not reach the mirror"
assert_eq "$(mg_metric upstream_rq_mirror_sent)" 513 "a copy goes out again once the copies in flight ended"
assert_eq "$(mg_metric upstream_rq_mirror_dropped)" 8 "no more drops"
mg_finish
