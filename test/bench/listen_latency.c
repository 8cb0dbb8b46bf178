/*
 * listen_latency: LISTEN on a channel and write one line per notification,
 * "<receive time, microseconds since the epoch (CLOCK_REALTIME)>\t<payload>"
 * (buffered: written out at exit, so writing costs the measurement
 * nothing).  Used by test/bench/latency.sh; connects with the usual libpq
 * environment (PGHOST, PGPORT, PGUSER, PGDATABASE).
 *
 *   listen_latency CHANNEL STOP_CHANNEL OUTPUT_FILE
 *
 * Prints "ready" on stdout once LISTEN is in place; exits 0 when a
 * notification arrives on STOP_CHANNEL (NOTIFY delivers in commit order, so
 * every notification committed before it has been received by then), 1 on
 * error or when the connection is lost.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "libpq-fe.h"

static void
listen_on(PGconn *conn, const char *channel)
{
	char	   *ident = PQescapeIdentifier(conn, channel, strlen(channel));
	char		sql[256];
	PGresult   *res;

	if (ident == NULL)
	{
		fprintf(stderr, "listen_latency: %s", PQerrorMessage(conn));
		exit(1);
	}
	snprintf(sql, sizeof(sql), "LISTEN %s", ident);
	PQfreemem(ident);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "listen_latency: %s", PQerrorMessage(conn));
		exit(1);
	}
	PQclear(res);
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	FILE	   *out;
	int			sock;

	if (argc != 4)
	{
		fprintf(stderr, "usage: %s CHANNEL STOP_CHANNEL OUTPUT_FILE\n", argv[0]);
		return 2;
	}
	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "listen_latency: %s", PQerrorMessage(conn));
		return 1;
	}
	out = fopen(argv[3], "w");
	if (out == NULL)
	{
		perror(argv[3]);
		return 1;
	}
	listen_on(conn, argv[1]);
	listen_on(conn, argv[2]);
	printf("ready\n");
	fflush(stdout);

	sock = PQsocket(conn);
	for (;;)
	{
		fd_set		in;
		PGnotify   *n;

		FD_ZERO(&in);
		FD_SET(sock, &in);
		if (select(sock + 1, &in, NULL, NULL, NULL) < 0)
		{
			if (errno == EINTR)
				continue;
			perror("select");
			return 1;
		}
		if (!PQconsumeInput(conn))
		{
			fprintf(stderr, "listen_latency: %s", PQerrorMessage(conn));
			return 1;
		}
		while ((n = PQnotifies(conn)) != NULL)
		{
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			if (strcmp(n->relname, argv[2]) == 0)
			{
				PQfreemem(n);
				fclose(out);
				PQfinish(conn);
				return 0;
			}
			fprintf(out, "%lld\t%s\n",
					(long long) ts.tv_sec * 1000000LL + ts.tv_nsec / 1000, n->extra);
			PQfreemem(n);
		}
	}
}
