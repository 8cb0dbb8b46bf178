# Shared by test/run.sh, the benchmarks and the demo: start and stop a
# throwaway PostgreSQL cluster with activity_monitor preloaded.
#
#   . test/lib/cluster.sh
#   am_cluster_start DIR [extra postgresql.conf lines...]   sets PGHOST PGPORT PGUSER PGDATA
#   am_cluster_stop
#
# initdb refuses to run as root, so as root the server runs as "postgres".

AM_PGBIN=${AM_PGBIN:-$(pg_config --bindir)}

am_as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

am_free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo 54329
}

am_cluster_start() {
	local dir=$1
	shift
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres "$dir"
	chmod 777 "$dir"
	export PGDATA=$dir/data PGHOST=$dir PGUSER=postgres
	export PGPORT=${AM_PORT:-$(am_free_port)}
	am_as_owner "$AM_PGBIN/initdb" -A trust -U postgres -E UTF8 --locale=C.UTF-8 -D "$PGDATA" >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log"; return 1; }
	{
		echo "shared_preload_libraries = 'activity_monitor'"
		echo "unix_socket_directories = '$dir'"
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $PGPORT"
		echo "fsync = off"
		echo "max_connections = 120"
		echo "max_worker_processes = 40"
		echo "log_line_prefix = '%m [%p] %q%a '"
		for line in "$@"; do echo "$line"; done
	} >>"$PGDATA/postgresql.conf"
	am_as_owner "$AM_PGBIN/pg_ctl" -D "$PGDATA" -l "$dir/server.log" -w -t 60 start >/dev/null ||
		{ cat "$dir/server.log"; return 1; }
}

am_cluster_stop() {
	[ -n "${PGDATA:-}" ] && [ -f "$PGDATA/postmaster.pid" ] &&
		am_as_owner "$AM_PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1
	return 0
}

# Wait until a query returns "t", at most $1 seconds; 0 if it did.
am_wait_for() {
	local deadline=$(($(date +%s) + $1)) db=$2 sql=$3
	while [ "$(date +%s)" -le "$deadline" ]; do
		[ "$(psql -X -At -d "$db" -c "$sql" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}
