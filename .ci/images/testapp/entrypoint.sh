#!/bin/sh
# testapp @VERSION@: a few log lines, then busybox httpd on :8080 serving /www.
echo "testapp @VERSION@ starting"
echo "testapp @VERSION@: pid $$, args: $*"
echo "testapp @VERSION@: listening on :8080"
# Like many real apps, it logs its database URL, password included: the
# tests check that Summoner hides it in `logs`.
[ -n "$DATABASE_URL" ] && echo "testapp @VERSION@: database $DATABASE_URL"
# Not `exec busybox httpd`: as PID 1, httpd has no SIGTERM handler, so the
# kernel drops the signal and `docker stop` always waited its full timeout
# (10 s). The shell traps TERM/INT and stops httpd at once, as a real app does.
busybox httpd -f -v -p 8080 -h /www &
pid=$!
trap 'echo "testapp @VERSION@ stopping"; kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
wait "$pid"
status=$?
echo "testapp @VERSION@: httpd exited ($status)" >&2
exit "$status"
