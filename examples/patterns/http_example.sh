#!/bin/sh
# http_example.sh SLUICE API_SERVER EXAMPLE [RUNS]: starts the example API server
# (api_server.c) on a free port, runs `sluice run --quiet EXAMPLE` against it RUNS times
# (default 1) with PORT and DATA (a fresh state directory shared by the runs) set, a line
# "-- run N" before each run after the first, then stops the server. The crawler's lines
# come in completion order: they are sorted.
sluice=$1 server=$2 example=$3 runs=${4:-1}
d=$(mktemp -d) || exit 1
"$server" "$d/port" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$d"' EXIT
i=0
while [ ! -s "$d/port" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -s "$d/port" ] || { echo "http_example: the server did not start" >&2; exit 1; }
PORT=$(cat "$d/port") DATA="$d/state"
export PORT DATA
mkdir -p "$DATA"
n=1
while [ $n -le "$runs" ]; do
    [ $n -gt 1 ] && echo "-- run $n"
    case $example in
    *crawler*) "$sluice" run --quiet "$example" 2>/dev/null | sort ;;
    *) "$sluice" run --quiet "$example" 2>/dev/null ;;
    esac || exit 1
    n=$((n + 1))
done
