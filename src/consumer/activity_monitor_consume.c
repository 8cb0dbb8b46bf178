/*-------------------------------------------------------------------------
 *
 * activity_monitor_consume.c
 *	  The alert consumer: a small libpq client that prints the alerts of one
 *	  or more activity_monitor alert channels, each as one JSON line on
 *	  standard output, without missing or repeating one across connection
 *	  losses and restarts.
 *
 * Alerts are rows of activity_monitor.alerts; the background worker inserts
 * them and sends a NOTIFY on the alert's channel in the same transaction,
 * and it is the only writer, so alert ids commit in increasing order.  That
 * makes "the highest alert id printed so far" a complete description of
 * what this program has consumed.
 *
 * A notification proves nothing: NOTIFY has no privileges, any role that
 * can connect can send one on any channel, with any payload.  So a
 * notification is only a wake-up: its payload is never read.  On every
 * (re)connection the program LISTENs, then reads the alerts of its channels
 * with an id above the last one printed from the table ("catch up"); each
 * notification (however many arrived together), and every --poll-interval
 * seconds without one, triggers the same read.  Because LISTEN comes first,
 * an alert that commits after a read is followed by a notification, so
 * nothing falls between two reads; a forged or malformed notification
 * costs one read that finds nothing new.  Each alert is printed as
 * activity_monitor.alert_payload(alert, true): the whole alert (what the
 * notification carried in 0.1.0), which the reader role may see, whatever
 * the rule sends in its notification.
 *
 * The id can be kept in a state file so a restarted consumer goes on where
 * it stopped.  It is replaced atomically: a temporary file next to it
 * (created exclusively, never through a symbolic link, mode 0600), written,
 * fsynced, renamed over the state file, and the directory fsynced.  A
 * temporary file left by a crash is removed and created again.  A lost
 * connection is reported on stderr and re-established with exponential
 * backoff; the catch-up then prints what fired in between.
 *
 * Delivery is at-least-once across a crash of this program: a line is
 * printed before the state file records it, so a consumer killed in between
 * prints that alert again when restarted.  A clean stop (SIGINT, SIGTERM,
 * --count, --timeout) saves the state first.
 *
 * IDENTIFICATION
 *	  src/consumer/activity_monitor_consume.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define PROGNAME		"activity_monitor_consume"
#define DEFAULT_CHANNEL	"activity_monitor_alerts"
#define MAX_CHANNEL_LEN	63		/* NAMEDATALEN - 1: NOTIFY's limit */
#define BACKOFF_MIN		0.2		/* seconds before the first reconnect */
#define BACKOFF_MAX		5.0		/* ... doubling up to this */
#define CONNECT_WAIT	15.0	/* give up on one connection attempt after */
#define DEFAULT_POLL	30.0	/* read the table without a notification after */

/* How a wait, a query or a session ended. */
typedef enum
{
	WAIT_READY,					/* the socket is ready */
	WAIT_TIMEOUT,				/* the time given (or --timeout) ran out */
	WAIT_SIGNAL					/* SIGINT or SIGTERM arrived */
} WaitResult;

typedef enum
{
	SESSION_OK,					/* step done, go on */
	SESSION_STOP,				/* signal, --count or --timeout: exit 0 */
	SESSION_LOST,				/* connection broken: reconnect */
	SESSION_FAILED				/* error on a working connection */
} SessionResult;

/* Options */
static const char *conninfo = "";	/* "" = PGHOST, PGPORT, PGDATABASE... */
static const char **channels = NULL;
static int	nchannels = 0;
static const char *state_file = NULL;
static long long from_id = -1;	/* -1 = not given */
static long long count_limit = 0;	/* 0 = no limit */
static double deadline = 0;		/* monotonic time to stop at; 0 = never */
static double poll_interval = DEFAULT_POLL; /* seconds; 0 = only on wake-ups */

/* Progress */
static long long last_id = -1;	/* highest alert id printed; -1 = unknown */
static long long saved_id = -1; /* what the state file holds */
static long long printed = 0;

/* Why the connection went away, as one line */
static char lost_reason[512];

/* Signals: a flag, and a pipe so that poll() wakes up without a race */
static volatile sig_atomic_t got_signal = 0;
static int	signal_pipe[2] = {-1, -1};

static void
usage(void)
{
	printf("%s prints activity_monitor alerts as JSON lines.\n\n", PROGNAME);
	printf("Usage:\n  %s [OPTION]...\n\n", PROGNAME);
	printf("Options:\n");
	printf("  -d, --dbname=CONNINFO    database name or connection string (default: \"\",\n"
		   "                           which means the PGHOST, PGPORT, PGDATABASE, PGUSER...\n"
		   "                           environment variables)\n");
	printf("  -c, --channel=CHANNEL    print the alerts of this channel; repeat for several\n"
		   "                           (default: %s)\n", DEFAULT_CHANNEL);
	printf("      --from-id=N          print the alerts with an id greater than N first\n");
	printf("      --state-file=PATH    keep the last printed alert id in PATH (replaced\n"
		   "                           atomically, mode 0600), and start from it when it\n"
		   "                           exists (--from-id takes precedence)\n");
	printf("      --poll-interval=SECS read the alerts table every SECS seconds even\n"
		   "                           without a notification (default: %.0f; 0 = never)\n",
		   DEFAULT_POLL);
	printf("      --count=N            exit after printing N alerts\n");
	printf("      --timeout=SECS       exit after SECS seconds\n");
	printf("  -h, --help               show this help, then exit\n\n");
	printf("Each alert is printed once, in alert id order, as one line of JSON: the whole\n"
		   "alert as activity_monitor.alert_payload(alert, true) gives it, read from the\n"
		   "activity_monitor.alerts table.  A notification on a channel only wakes the\n"
		   "program up to read the table: its payload is never used, so a notification\n"
		   "sent by anyone else changes nothing.  With neither --from-id nor an existing\n"
		   "state file, only alerts fired after the program starts are printed.  After a\n"
		   "lost connection the program reconnects (waiting 0.2 s, then doubling up to\n"
		   "5 s) and first prints the alerts fired while it was away.  The role needs\n"
		   "activity_monitor_reader (and activity_monitor 0.2.0 or later).\n\n");
	printf("Exit status: 0 after --count, --timeout, SIGINT or SIGTERM; 1 if the first\n"
		   "connection or the first read of the alerts fails, or on any other error; 2 on\n"
		   "bad options.\n");
}

/* Report an error on stderr and exit with status 1. */
static void
fatal(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", PROGNAME);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/*
 * Copy a (possibly multi-line) libpq or server message into dst as one
 * line: newlines and tabs become spaces, runs of spaces collapse.
 */
static void
one_line(char *dst, size_t size, const char *src)
{
	size_t		n = 0;
	bool		space = true;	/* drops leading blanks */

	for (; *src && n + 1 < size; src++)
	{
		char		c = (*src == '\n' || *src == '\t' || *src == '\r') ? ' ' : *src;

		if (c == ' ' && space)
			continue;
		space = (c == ' ');
		dst[n++] = c;
	}
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
}

static void
handle_signal(int signo)
{
	int			save_errno = errno;
	ssize_t		rc;

	(void) signo;
	got_signal = 1;
	rc = write(signal_pipe[1], "x", 1);
	(void) rc;
	errno = save_errno;
}

/*
 * SIGINT and SIGTERM set a flag and write to a pipe that every wait polls,
 * so a signal arriving just before poll() still wakes it.  SIGPIPE is
 * ignored so that a closed stdout shows up as a write error.
 */
static void
setup_signals(void)
{
	struct sigaction sa;

	if (pipe(signal_pipe) != 0)
		fatal("could not create pipe: %s", strerror(errno));
	fcntl(signal_pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* True when the program should stop: signal, --count reached, --timeout. */
static bool
stop_requested(void)
{
	return got_signal ||
		(count_limit > 0 && printed >= count_limit) ||
		(deadline > 0 && now_seconds() >= deadline);
}

/*
 * Wait until fd (if >= 0) is ready for events, a signal arrives, or the
 * earlier of "until" and the --timeout deadline passes (0 = no limit).
 */
static WaitResult
wait_for(int fd, short events, double until)
{
	if (deadline > 0 && (until == 0 || deadline < until))
		until = deadline;

	for (;;)
	{
		struct pollfd pfd[2];
		int			nfds = 0;
		int			timeout_ms = -1;
		int			rc;

		if (got_signal)
			return WAIT_SIGNAL;
		if (until > 0)
		{
			double		left = until - now_seconds();

			if (left <= 0)
				return WAIT_TIMEOUT;
			timeout_ms = (int) (left * 1000) + 1;
		}
		pfd[nfds].fd = signal_pipe[0];
		pfd[nfds].events = POLLIN;
		nfds++;
		if (fd >= 0)
		{
			pfd[nfds].fd = fd;
			pfd[nfds].events = events;
			nfds++;
		}
		rc = poll(pfd, nfds, timeout_ms);
		if (rc < 0)
		{
			if (errno == EINTR)
				continue;
			fatal("poll() failed: %s", strerror(errno));
		}
		if (got_signal)
			return WAIT_SIGNAL;
		/* readable, writable, or an error the next libpq call will report */
		if (fd >= 0 && pfd[1].revents != 0)
			return WAIT_READY;
	}
}

/*
 * Parse a non-negative integer option value; exits with status 2 on
 * anything else.
 */
static long long
parse_count(const char *opt, const char *s, bool allow_zero)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || (v == 0 && !allow_zero))
	{
		fprintf(stderr, "%s: invalid value \"%s\" for %s\n", PROGNAME, s, opt);
		exit(2);
	}
	return v;
}

/*
 * Read the last printed id from the state file.  A missing file means
 * "no state yet"; an unreadable or malformed one is an error, since
 * guessing could print alerts twice or skip them.
 */
static void
load_state(void)
{
	FILE	   *f = fopen(state_file, "r");
	char		buf[64];
	char	   *end;
	long long	v;

	if (f == NULL)
	{
		if (errno == ENOENT)
			return;
		fprintf(stderr, "%s: could not open state file \"%s\": %s\n",
				PROGNAME, state_file, strerror(errno));
		exit(1);
	}
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	errno = 0;
	v = strtoll(buf, &end, 10);
	while (*end == '\n' || *end == '\r' || *end == ' ')
		end++;
	if (errno != 0 || end == buf || *end != '\0' || v < 0)
		fatal("state file \"%s\" does not hold an alert id", state_file);
	last_id = saved_id = v;
}

/*
 * Report a failure to write the state file, remove our temporary file if we
 * created it, and exit with status 1.
 */
static void
state_error(const char *what, const char *path, const char *tmp_to_remove)
{
	int			save_errno = errno;

	if (tmp_to_remove != NULL)
		(void) unlink(tmp_to_remove);
	fprintf(stderr, "%s: could not %s \"%s\": %s\n", PROGNAME, what, path,
			strerror(save_errno));
	exit(1);
}

/*
 * Create the temporary state file exclusively (O_EXCL: never an existing
 * file; O_NOFOLLOW: never through a symbolic link) with mode 0600.  If
 * something is already there, it is a leftover of a consumer that crashed
 * between creating and renaming it (or a file someone planted): remove it
 * (unlink removes a link, not what it points to) and try once more, so a
 * crash never blocks the program for good.
 */
static int
create_temp_state(const char *tmp)
{
	int			flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int			fd = open(tmp, flags, S_IRUSR | S_IWUSR);

	if (fd < 0 && errno == EEXIST)
	{
		if (unlink(tmp) != 0 && errno != ENOENT)
			state_error("remove the stale temporary state file", tmp, NULL);
		fprintf(stderr, "%s: removed a stale temporary state file \"%s\"\n", PROGNAME, tmp);
		fd = open(tmp, flags, S_IRUSR | S_IWUSR);
	}
	if (fd < 0)
		state_error("create the temporary state file", tmp, NULL);
	return fd;
}

/*
 * Record last_id in the state file if it changed, atomically: write
 * PATH.tmp (see create_temp_state), fsync it, rename it over PATH, fsync
 * the directory so the rename survives a power loss.  The file always
 * holds a whole id: the old one or the new one.
 */
static void
save_state(void)
{
	char	   *tmp;
	char	   *dir;
	char	   *slash;
	char		buf[32];
	int			fd;
	int			len;

	if (state_file == NULL || last_id == saved_id || last_id < 0)
		return;
	tmp = malloc(strlen(state_file) + 5);
	dir = strdup(state_file);
	if (tmp == NULL || dir == NULL)
		fatal("%s", "out of memory");
	sprintf(tmp, "%s.tmp", state_file);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';

	len = snprintf(buf, sizeof(buf), "%lld\n", last_id);
	fd = create_temp_state(tmp);
	errno = 0;
	if (write(fd, buf, len) != len)
	{
		if (errno == 0)
			errno = ENOSPC;
		state_error("write the temporary state file", tmp, tmp);
	}
	if (fsync(fd) != 0)
		state_error("fsync the temporary state file", tmp, tmp);
	if (close(fd) != 0)
		state_error("close the temporary state file", tmp, tmp);
	if (rename(tmp, state_file) != 0)
		state_error("rename the temporary state file to", state_file, tmp);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		state_error("fsync the directory", dir, NULL);
	close(fd);
	free(tmp);
	free(dir);
	saved_id = last_id;
}

/* Print one alert line and remember its id. */
static void
emit(long long id, const char *payload)
{
	fputs(payload, stdout);
	fputc('\n', stdout);
	if (fflush(stdout) != 0 || ferror(stdout))
	{
		if (errno != EPIPE)
			fprintf(stderr, "%s: could not write to standard output: %s\n",
					PROGNAME, strerror(errno));
		exit(1);
	}
	last_id = id;
	printed++;
}

/*
 * Server messages that arrive outside a query: an ERROR/FATAL is usually
 * the server saying why it closes the connection (pg_terminate_backend,
 * shutdown), so keep it for the "connection lost" line; print anything
 * else (WARNING, NOTICE) as one line.
 */
static void
notice_receiver(void *arg, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY);
	const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char		line[512];

	(void) arg;
	snprintf(line, sizeof(line), "%s: %s", severity ? severity : "NOTICE",
			 message ? message : PQresultErrorMessage(res));
	if (severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "ERROR") == 0 ||
					 strcmp(severity, "PANIC") == 0))
	{
		char		reason[600];

		snprintf(reason, sizeof(reason), "connection lost: %s", line);
		one_line(lost_reason, sizeof(lost_reason), reason);
	}
	else
	{
		char		out[512];

		one_line(out, sizeof(out), line);
		fprintf(stderr, "%s: server %s\n", PROGNAME, out);
	}
}

/* Classify a failure on conn: broken connection, or error on a good one. */
static SessionResult
failure(PGconn *conn, const char *what, const PGresult *res)
{
	char		msg[512];
	char		line[600];

	one_line(msg, sizeof(msg), res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	if (msg[0] == '\0')
		one_line(msg, sizeof(msg), PQerrorMessage(conn));
	/* keep a server FATAL seen earlier: it says more than "server closed" */
	if (PQstatus(conn) == CONNECTION_BAD && lost_reason[0] != '\0')
		return SESSION_LOST;
	snprintf(line, sizeof(line), "%s: %s", what, msg);
	one_line(lost_reason, sizeof(lost_reason), line);
	return PQstatus(conn) == CONNECTION_BAD ? SESSION_LOST : SESSION_FAILED;
}

/*
 * Classify a failed read of the alerts table, naming the usual causes: a
 * role without activity_monitor_reader, an extension missing or too old
 * for this program (no alert_payload(alerts, boolean) before 0.2.0).
 */
static SessionResult
read_failure(PGconn *conn, const PGresult *res)
{
	const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	char		what[300];

	if (sqlstate != NULL && strcmp(sqlstate, "42501") == 0)
		snprintf(what, sizeof(what),
				 "role \"%.100s\" may not read activity_monitor.alerts (grant it activity_monitor_reader)",
				 PQuser(conn));
	else if (sqlstate != NULL && (strcmp(sqlstate, "42883") == 0 || strcmp(sqlstate, "42P01") == 0 ||
								  strcmp(sqlstate, "3F000") == 0))
		snprintf(what, sizeof(what),
				 "could not read the alerts (is activity_monitor 0.2.0 or later installed in this database?)");
	else
		snprintf(what, sizeof(what), "could not read the alerts");
	return failure(conn, what, res);
}

/*
 * Connect without blocking signals or --timeout: PQconnectStartParams and
 * PQconnectPoll driven by wait_for().  conninfo comes last in the keyword
 * list so that it overrides the keepalive defaults set before it; the
 * keepalives make a silently dead TCP connection show up as lost.
 */
static SessionResult
open_connection(PGconn **connp)
{
	const char *keywords[] = {"keepalives", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "fallback_application_name", "dbname", NULL};
	const char *values[] = {"1", "30", "10", "3", PROGNAME, conninfo, NULL};
	PGconn	   *conn;
	PostgresPollingStatusType pst = PGRES_POLLING_WRITING;
	double		give_up = now_seconds() + CONNECT_WAIT;

	*connp = conn = PQconnectStartParams(keywords, values, 1);
	if (conn == NULL)
		fatal("%s", "out of memory");
	PQsetNoticeReceiver(conn, notice_receiver, NULL);
	if (PQstatus(conn) == CONNECTION_BAD)
		return failure(conn, "could not connect", NULL);

	while (pst != PGRES_POLLING_OK)
	{
		WaitResult	w;

		if (pst == PGRES_POLLING_FAILED)
			return failure(conn, "could not connect", NULL);
		w = wait_for(PQsocket(conn), pst == PGRES_POLLING_READING ? POLLIN : POLLOUT,
					 give_up);
		if (w == WAIT_SIGNAL || stop_requested())
			return SESSION_STOP;
		if (w == WAIT_TIMEOUT)
		{
			snprintf(lost_reason, sizeof(lost_reason),
					 "could not connect: timeout expired after %.0f s", CONNECT_WAIT);
			return SESSION_LOST;
		}
		pst = PQconnectPoll(conn);
	}
	return SESSION_OK;
}

/*
 * Wait for the next result of the query in progress and return it in *res
 * (NULL when the query is done), reading input as it arrives so that a
 * signal or --timeout is honoured while the server works.
 */
static SessionResult
next_result(PGconn *conn, PGresult **res)
{
	*res = NULL;
	while (PQisBusy(conn))
	{
		WaitResult	w = wait_for(PQsocket(conn), POLLIN, 0);

		if (w != WAIT_READY)
			return SESSION_STOP;
		if (!PQconsumeInput(conn))
			return failure(conn, "connection lost", NULL);
	}
	*res = PQgetResult(conn);
	return SESSION_OK;
}

/* LISTEN on every channel, as quoted identifiers, in one round trip. */
static SessionResult
listen_channels(PGconn *conn)
{
	size_t		size = 1;
	char	   *sql;
	PGresult   *res;
	SessionResult r;
	bool		ok = true;
	int			i;

	for (i = 0; i < nchannels; i++)
		size += strlen(channels[i]) * 2 + 16;
	sql = malloc(size);
	if (sql == NULL)
		fatal("%s", "out of memory");
	sql[0] = '\0';
	for (i = 0; i < nchannels; i++)
	{
		char	   *ident = PQescapeIdentifier(conn, channels[i], strlen(channels[i]));

		if (ident == NULL)
		{
			free(sql);
			return failure(conn, "could not quote channel name", NULL);
		}
		strcat(sql, "LISTEN ");
		strcat(sql, ident);
		strcat(sql, ";");
		PQfreemem(ident);
	}
	if (!PQsendQuery(conn, sql))
	{
		free(sql);
		return failure(conn, "could not send LISTEN", NULL);
	}
	free(sql);

	for (;;)
	{
		if ((r = next_result(conn, &res)) != SESSION_OK)
			return r;
		if (res == NULL)
			break;
		if (ok && PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			r = failure(conn, "LISTEN failed", res);
			ok = false;
		}
		PQclear(res);
	}
	return ok ? SESSION_OK : r;
}

/*
 * Build the text[] literal {"a","b"} of the channel names, escaping
 * backslashes and double quotes.
 */
static char *
channel_array_literal(void)
{
	size_t		size = 3;
	char	   *lit;
	char	   *p;
	int			i;

	for (i = 0; i < nchannels; i++)
		size += strlen(channels[i]) * 2 + 3;
	p = lit = malloc(size);
	if (lit == NULL)
		fatal("%s", "out of memory");
	*p++ = '{';
	for (i = 0; i < nchannels; i++)
	{
		const char *s;

		if (i > 0)
			*p++ = ',';
		*p++ = '"';
		for (s = channels[i]; *s; s++)
		{
			if (*s == '"' || *s == '\\')
				*p++ = '\\';
			*p++ = *s;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return lit;
}

/*
 * Print, in id order, the alerts on our channels with an id above last_id,
 * read from the table (at each connection and each wake-up), streaming them
 * in single-row mode so a long backlog needs no memory.
 * With no starting point yet (first connection, no --from-id, no state
 * file) only note the current highest id: the program prints new alerts.
 */
static SessionResult
catch_up(PGconn *conn)
{
	const char *sql;
	const char *params[2];
	char		idbuf[32];
	char	   *lit = NULL;
	PGresult   *res;
	SessionResult r;
	SessionResult result = SESSION_OK;
	bool		start_from_max = (last_id < 0);
	int			nparams;

	if (start_from_max)
	{
		sql = "SELECT coalesce(pg_catalog.max(id), 0), NULL FROM activity_monitor.alerts";
		nparams = 0;
	}
	else
	{
		sql = "SELECT a.id, activity_monitor.alert_payload(a, true) "
			"FROM activity_monitor.alerts a "
			"WHERE a.id OPERATOR(pg_catalog.>) $1::pg_catalog.int8 "
			"AND a.channel OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.text[]) "
			"ORDER BY a.id";
		snprintf(idbuf, sizeof(idbuf), "%lld", last_id);
		lit = channel_array_literal();
		params[0] = idbuf;
		params[1] = lit;
		nparams = 2;
	}
	if (!PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0))
	{
		free(lit);
		return failure(conn, "could not send catch-up query", NULL);
	}
	free(lit);
	PQsetSingleRowMode(conn);

	for (;;)
	{
		ExecStatusType st;

		if ((r = next_result(conn, &res)) != SESSION_OK)
			return r;
		if (res == NULL)
			break;
		st = PQresultStatus(res);
		if (st == PGRES_SINGLE_TUPLE && result == SESSION_OK)
		{
			long long	id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);

			if (start_from_max)
				last_id = id;
			else if (id > last_id)
				emit(id, PQgetvalue(res, 0, 1));
		}
		else if (st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE && result == SESSION_OK)
			result = read_failure(conn, res);
		PQclear(res);
		/* --count reached: stop now, the rest stays for the next run */
		if (result == SESSION_OK && stop_requested())
		{
			save_state();
			return SESSION_STOP;
		}
	}
	if (result == SESSION_OK)
		save_state();
	return result;
}

/*
 * Take the notifications libpq has queued and throw them away: whatever
 * their payload says, they only tell that something may have been fired.
 * True if there was at least one.
 */
static bool
drain_notifications(PGconn *conn)
{
	PGnotify   *n;
	bool		any = false;

	while ((n = PQnotifies(conn)) != NULL)
	{
		any = true;
		PQfreemem(n);
	}
	return any;
}

/*
 * Wait for wake-ups until the connection breaks or we must stop: after
 * notifications (also those that arrived during the previous read), and
 * every poll_interval seconds without any, read the table again.
 */
static SessionResult
listen_loop(PGconn *conn)
{
	double		next_poll = poll_interval > 0 ? now_seconds() + poll_interval : 0;

	for (;;)
	{
		WaitResult	w;
		SessionResult r;

		if (stop_requested())
			return SESSION_STOP;
		if (drain_notifications(conn))
			w = WAIT_TIMEOUT;	/* read now */
		else
		{
			w = wait_for(PQsocket(conn), POLLIN, next_poll);
			if (w == WAIT_SIGNAL)
				return SESSION_STOP;
			if (w == WAIT_READY)
			{
				if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK)
					return failure(conn, "connection lost", NULL);
				continue;
			}
		}
		/* a wake-up, or the poll interval (or --timeout) ran out */
		if (stop_requested())
			return SESSION_STOP;
		if ((r = catch_up(conn)) != SESSION_OK)
			return r;
		next_poll = poll_interval > 0 ? now_seconds() + poll_interval : 0;
	}
}

/*
 * One connection's life: connect, LISTEN, catch up, then catch up again
 * at each wake-up.  *established is set once the catch-up is done: the
 * connection worked, so the next loss starts a fresh backoff.
 */
static SessionResult
run_session(bool *established)
{
	PGconn	   *conn = NULL;
	SessionResult r;

	lost_reason[0] = '\0';
	r = open_connection(&conn);
	if (r == SESSION_OK)
		r = listen_channels(conn);
	if (r == SESSION_OK)
		r = catch_up(conn);
	if (r == SESSION_OK)
	{
		*established = true;
		r = listen_loop(conn);
	}
	PQfinish(conn);
	return r;
}

int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
		{"dbname", required_argument, NULL, 'd'},
		{"channel", required_argument, NULL, 'c'},
		{"from-id", required_argument, NULL, 1},
		{"state-file", required_argument, NULL, 2},
		{"count", required_argument, NULL, 3},
		{"timeout", required_argument, NULL, 4},
		{"poll-interval", required_argument, NULL, 5},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	static const char *default_channels[] = {DEFAULT_CHANNEL};
	double		timeout = 0;
	double		delay = BACKOFF_MIN;
	bool		ever_established = false;
	bool		established;
	char		last_report[sizeof(lost_reason)] = "";
	int			c;
	int			i;

	channels = calloc(argc, sizeof(char *));
	if (channels == NULL)
		fatal("%s", "out of memory");
	while ((c = getopt_long(argc, argv, "d:c:h", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				conninfo = optarg;
				break;
			case 'c':
				channels[nchannels++] = optarg;
				break;
			case 1:
				from_id = parse_count("--from-id", optarg, true);
				break;
			case 2:
				state_file = optarg;
				break;
			case 3:
				count_limit = parse_count("--count", optarg, false);
				break;
			case 4:
				{
					char	   *end;

					timeout = strtod(optarg, &end);
					if (end == optarg || *end != '\0' || !(timeout > 0))
					{
						fprintf(stderr, "%s: invalid value \"%s\" for --timeout\n",
								PROGNAME, optarg);
						exit(2);
					}
				}
				break;
			case 5:
				{
					char	   *end;

					poll_interval = strtod(optarg, &end);
					if (end == optarg || *end != '\0' || !(poll_interval >= 0) ||
						poll_interval > 86400 * 365)
					{
						fprintf(stderr, "%s: invalid value \"%s\" for --poll-interval\n",
								PROGNAME, optarg);
						exit(2);
					}
				}
				break;
			case 'h':
				usage();
				exit(0);
			default:
				fprintf(stderr, "Try \"%s --help\" for more information.\n", PROGNAME);
				exit(2);
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", PROGNAME, argv[optind]);
		fprintf(stderr, "Try \"%s --help\" for more information.\n", PROGNAME);
		exit(2);
	}
	if (nchannels == 0)
	{
		free(channels);
		channels = default_channels;
		nchannels = 1;
	}
	for (i = 0; i < nchannels; i++)
	{
		if (channels[i][0] == '\0' || strlen(channels[i]) > MAX_CHANNEL_LEN)
		{
			fprintf(stderr, "%s: invalid channel name \"%s\": must be 1 to %d bytes long\n",
					PROGNAME, channels[i], MAX_CHANNEL_LEN);
			exit(2);
		}
	}

	setup_signals();
	if (timeout > 0)
		deadline = now_seconds() + timeout;
	if (from_id >= 0)
		last_id = from_id;
	else if (state_file != NULL)
		load_state();

	for (;;)
	{
		SessionResult r;

		established = false;
		r = run_session(&established);
		save_state();
		if (r == SESSION_STOP || stop_requested())
			break;
		if (established)
		{
			ever_established = true;
			delay = BACKOFF_MIN;
			last_report[0] = '\0';
		}
		else if (!ever_established)
		{
			fprintf(stderr, "%s: %s\n", PROGNAME,
					lost_reason[0] ? lost_reason : "could not connect");
			exit(1);
		}

		/* one line per loss, and per change of reason while retrying */
		if (strcmp(lost_reason, last_report) != 0)
		{
			fprintf(stderr, "%s: %s; reconnecting\n", PROGNAME,
					lost_reason[0] ? lost_reason : "connection lost");
			strcpy(last_report, lost_reason);
		}
		if (wait_for(-1, 0, now_seconds() + delay) == WAIT_SIGNAL || stop_requested())
			break;
		delay = delay * 2 > BACKOFF_MAX ? BACKOFF_MAX : delay * 2;
	}
	save_state();
	return 0;
}
