#!/usr/bin/env bash
# README examples run as written.
#
# SQL: every ```sql block of README.md is extracted, in order, and run with
# psql -v ON_ERROR_STOP=1, one block per psql call, in one fresh database
# holding the fixture the examples refer to (test/shell/readme_fixture.sql:
# public.accounts, public.payments, public.user_sessions, roles dba_team,
# security_team and backoffice_app).  If some block creates the extension (README's install
# step does) the extension is NOT pre-installed, so that block runs as
# written; otherwise it is installed after the fixture.  Blocks run in README
# order (untrack after track, rules after install).  Any block that errors
# fails the test, named by its README line and first line; the error's README
# line is given too.  WARNINGs are shown but do not fail.
#
# sh: in ```sh blocks every command is checked to exist, not run: "make T"
# needs T to be a target of the Makefile, and the recipe's repo-relative
# scripts (e.g. test/demo/run.sh) must exist; "activity_monitor_consume ..."
# needs "--help" to exit 0 (when the binary exists) and every option the
# example uses to be listed by --help; any other command must be on PATH.
#
# Env: PGHOST/PGPORT/PGUSER (superuser, running cluster with activity_monitor
# preloaded), AM_ROOT (repo root), AM_TMP (scratch dir), README_PATH (default
# $AM_ROOT/README.md; point it at a broken copy to see the test fail).
# Exit 0 = pass.
set -uo pipefail

AM_ROOT=${AM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
readme=${README_PATH:-$AM_ROOT/README.md}
fixture=$AM_ROOT/test/shell/readme_fixture.sql
work=${AM_TMP:-$(mktemp -d)}/readme_examples
db=am_readme_examples
roles="dba_team security_team backoffice_app"
start_s=$(date +%s)

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
die() { echo "FAIL: $*"; exit 1; }
psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }

[ -r "$readme" ] || die "README not readable: $readme"
[ -r "$fixture" ] || die "fixture not readable: $fixture"
rm -rf "$work"
mkdir -p "$work"

# --- extract fenced blocks ------------------------------------------------------
# One file per block: $work/block_N.<lang>; index lines "N lang line" where
# line is the README line of the block's first content line.
awk -v dir="$work" '
	function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
	{
		line = $0
		if (!inblock && line ~ /^ *```/) {
			lang = trim(substr(trim(line), 4))
			sub(/[ \t].*$/, "", lang)
			n++; inblock = 1; first = NR + 1
			if (lang == "") lang = "plain"
			file = dir "/block_" n "." lang
			printf "" > file
			printf "%d %s %d\n", n, lang, first > (dir "/index")
			next
		}
		if (inblock && line ~ /^ *```[ \t\r]*$/) { close(file); inblock = 0; next }
		if (inblock) print line > file
	}
	END { if (inblock) { printf "unterminated fence opened at line %d\n", first - 1 > "/dev/stderr"; exit 3 } }
' "$readme" || die "could not parse the fences of $readme"
[ -f "$work/index" ] || die "no fenced blocks in $readme"

# "block at README line L: <first non-blank line>"
block_name() {	# file line
	local first
	first=$(grep -m1 -v '^[[:space:]]*$' "$1" | sed 's/^[[:space:]]*//')
	printf 'block at README line %s: "%s"' "$2" "${first:0:90}"
}

sql_blocks=()
sh_blocks=()
while read -r n lang line; do
	case $lang in
	sql) sql_blocks+=("$n:$line") ;;
	sh | bash | shell) sh_blocks+=("$n:$line") ;;
	esac
done <"$work/index"
[ ${#sql_blocks[@]} -gt 0 ] || die "no \`\`\`sql blocks in $readme"
echo "README: $readme (${#sql_blocks[@]} sql blocks, ${#sh_blocks[@]} sh blocks)"

# --- database and roles -------------------------------------------------------------
created_roles=""
for r in $roles; do
	[ "$(psql_admin -c "SELECT count(*) FROM pg_roles WHERE rolname = '$r'")" = 0 ] &&
		created_roles="$created_roles $r"
done

cleanup() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
	for r in $created_roles; do
		psql -X -q -d postgres -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1
	done
}
trap cleanup EXIT

psql_admin -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" ||
	die "could not create database $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$fixture" >"$work/fixture.out" 2>&1 ||
	{ cat "$work/fixture.out"; die "fixture $fixture failed"; }

creates_ext=0
for b in "${sql_blocks[@]}"; do
	grep -Eiq 'create[[:space:]]+extension[[:space:]]+(if[[:space:]]+not[[:space:]]+exists[[:space:]]+)?"?activity_monitor\b' \
		"$work/block_${b%%:*}.sql" && creates_ext=1
done
if [ $creates_ext = 0 ]; then
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION activity_monitor" >/dev/null ||
		die "CREATE EXTENSION activity_monitor failed"
	echo "extension pre-installed (no README block creates it)"
else
	echo "extension not pre-installed (a README block creates it)"
fi

# --- run the SQL blocks in README order ----------------------------------------------
for b in "${sql_blocks[@]}"; do
	n=${b%%:*} line=${b#*:}
	f=$work/block_$n.sql
	name=$(block_name "$f" "$line")
	if psql -X -v ON_ERROR_STOP=1 -d "$db" -f "$f" >"$work/block_$n.out" 2>"$work/block_$n.err"; then
		echo "ok    sql $name"
		# warnings do not fail; show them with their README line
		awk -v f="psql:$f:" -v base="$line" 'index($0, f) == 1 && /WARNING:/ {
			rest = substr($0, length(f) + 1); l = rest + 0; sub(/^[0-9]+: */, "", rest)
			printf "      note (README line %d): %s\n", base + l - 1, rest }' "$work/block_$n.err"
	else
		# psql reports "psql:FILE:L: ERROR: ..."; map L to the README line.
		err=$(grep -m1 -E 'ERROR|FATAL|error' "$work/block_$n.err")
		l=$(sed -n "s|^psql:$f:\([0-9]*\):.*|\1|p" <<<"$err")
		at=""
		[ -n "$l" ] && at=" (statement ending at README line $((line + l - 1)))"
		fail "sql $name$at"
		sed 's/^/    /' "$work/block_$n.err"
	fi
done

# --- sh blocks: commands exist ---------------------------------------------------------
make_targets=$(make -C "$AM_ROOT" -npq .DEFAULT 2>/dev/null |
	awk '/^# Not a target/ { skip = 1; next } /^[A-Za-z0-9_.\/-]+:/ { if (!skip) { sub(/:.*/, ""); print } } { skip = 0 }' |
	sort -u)

consume_bin=""
for c in "$AM_ROOT/activity_monitor_consume" "$(pg_config --bindir 2>/dev/null)/activity_monitor_consume"; do
	[ -x "$c" ] && { consume_bin=$c; break; }
done

check_make() {	# name words...
	local name=$1 t targets=() w first before
	shift
	shift	# "make"
	for w in "$@"; do
		case $w in -* | *=*) ;; *) targets+=("$w") ;; esac
	done
	[ ${#targets[@]} -gt 0 ] || targets=(all)
	for t in "${targets[@]}"; do
		before=$failures
		if ! grep -qxF -- "$t" <<<"$make_targets"; then
			fail "sh $name: \"make $t\": no target $t in the Makefile"
			continue
		fi
		# the recipe's repo-relative commands must exist
		while read -r first _; do
			case $first in
			"" | /* | make*) ;;
			*/*) [ -e "$AM_ROOT/$first" ] ||
				fail "sh $name: \"make $t\" runs $first, which does not exist" ;;
			esac
		done < <(make -s -n -C "$AM_ROOT" "$t" 2>/dev/null | grep -v '^make\[')
		[ $failures = "$before" ] && echo "ok    sh make $t"
	done
}

check_consume() {	# name words...
	local name=$1 w opt help before=$failures
	shift
	if [ -z "$consume_bin" ]; then
		echo "skip  sh $name: activity_monitor_consume not built"
		return
	fi
	if ! help=$("$consume_bin" --help 2>&1); then
		fail "sh $name: activity_monitor_consume --help does not exit 0"
		return
	fi
	shift
	for w in "$@"; do
		case $w in
		-*) opt=${w%%=*}
			grep -Eq -- "(^|[[:space:],])$opt([[:space:],=]|$)" <<<"$help" ||
				fail "sh $name: option $opt is not in activity_monitor_consume --help" ;;
		esac
	done
	[ $failures = "$before" ] && echo "ok    sh activity_monitor_consume (--help, options $(printf '%s ' "$@" | grep -oE -- '(^| )-[-a-z]+' | tr -d ' ' | tr '\n' ' '))"
}

for b in "${sh_blocks[@]}"; do
	n=${b%%:*} line=${b#*:}
	f=$(ls "$work"/block_"$n".* | head -n1)
	name=$(block_name "$f" "$line")
	# join continuation lines, drop comments, one command per line
	sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$f" |
		sed -E 's/(^|[[:space:]])#.*$//' |
		sed -E 's/(&&|\|\||;|\|)/\n/g' >"$work/block_$n.cmds"
	while read -ra words; do
		[ ${#words[@]} -gt 0 ] || continue
		while [ ${#words[@]} -gt 0 ] && { [ "${words[0]}" = sudo ] || [[ ${words[0]} == *=* ]]; }; do
			words=("${words[@]:1}")
		done
		[ ${#words[@]} -gt 0 ] || continue
		case ${words[0]} in
		make) check_make "$name" "${words[@]}" ;;
		activity_monitor_consume | */activity_monitor_consume) check_consume "$name" "${words[@]}" ;;
		*) if command -v "${words[0]}" >/dev/null 2>&1; then
			echo "ok    sh ${words[0]} (on PATH)"
		else
			fail "sh $name: command ${words[0]} not found"
		fi ;;
		esac
	done <"$work/block_$n.cmds"
done

echo "elapsed: $(($(date +%s) - start_s)) s"
if [ $failures -gt 0 ]; then
	echo "$failures README example check(s) failed"
	exit 1
fi
echo "all README examples ok"
