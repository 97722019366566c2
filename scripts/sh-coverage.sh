#!/bin/sh
# Branch coverage of the host script by its fast tests (tests/script.rs).
#
#   scripts/sh-coverage.sh [DIR]        run the tests, then measure
#   scripts/sh-coverage.sh --only DIR   measure traces already in DIR
#
# The tests run with RBUILD_SH_COVERAGE=DIR: the script, as shipped
# (stripped), runs under `bash --posix` with xtrace (PS4='+${LINENO} ') into
# a file per run in DIR, and DIR/script.sh is the script that ran. The
# measure: over the script's lines, each branch arm (the first command of an
# `if`/`elif`/`else` body, and of a `case` arm) is reached when the trace
# shows that line (an arm on a line of its own), or a command on that line
# starting with the arm's first word (an arm on the line of its condition or
# pattern). An arm with no command (`pat) ;;`) is not counted. It prints the
# total and every arm never reached, by its line in src/remote/remote.sh
# where the stripped script maps onto it line for line, else by its line in
# DIR/script.sh.
set -eu
cd "$(dirname "$0")/.."
only=0
if [ "${1:-}" = --only ]; then
	only=1
	shift
fi
dir=${1:-target/sh-coverage}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
if [ "$only" = 0 ]; then
	rm -rf "$dir"
	mkdir -p "$dir"
	if ! RBUILD_SH_COVERAGE=$dir cargo test -q --test script >"$dir/test.log" 2>&1; then
		echo "note: some script tests failed (see $dir/test.log); coverage is of what ran"
	fi
fi
[ -f "$dir/script.sh" ] || {
	echo "no $dir/script.sh: no traced run" >&2
	exit 1
}
src=src/remote/remote.sh
[ -f "$src" ] || src=/dev/null

# the traces, as "LINE WORD" (a command's first word, quotes dropped)
cat "$dir"/trace.* 2>/dev/null | awk '
	/^\++[0-9]+ / {
		sub(/^\++/, "")
		n = $1
		w = $2
		gsub(/\047/, "", w)
		if (match(w, /^[A-Za-z_][A-Za-z_0-9]*=/)) w = substr(w, 1, RLENGTH)
		if (!((n, w) in seen)) { seen[n, w] = 1; print n, w }
	}' >"$dir/reached"

awk -v reached="$dir/reached" -v src="$src" -v name="${src##*/}" '
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
# the first word of a command: an assignment is NAME=, a group or negation
# is looked through
function first(s,   a) {
	s = trim(s)
	while (s ~ /^[{(!] /) s = trim(substr(s, 3))
	if (match(s, /^[A-Za-z_][A-Za-z_0-9]*=/)) return substr(s, 1, RLENGTH)
	split(s, a, /[ ;]/)
	gsub(/["\047]/, "", a[1])
	return a[1]
}
function arm(line, word, text) {
	narms++
	aline[narms] = line; aword[narms] = word; atext[narms] = text
}
# the index of the first unquoted ")" in s, 0 if none
function close_paren(s,   i, c, q) {
	q = ""
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (q != "") { if (c == q) q = ""; continue }
		if (c == "\\") { i++; continue }
		if (c == "\"" || c == "\047") { q = c; continue }
		if (c == ")") return i
	}
	return 0
}
# case_text: what follows on line n inside the innermost case (depth),
# expecting a pattern (expect[depth]) or in an arm body
function case_text(s, n,   p, body, k) {
	while (1) {
		s = trim(s)
		if (s == "") return
		if (expect[depth]) {
			if (s ~ /^esac/) {
				depth--
				s = substr(s, 5)
				s = trim(s)
				# after esac: the outer arm body may end here
				if (depth > 0 && s ~ /^;;/) { expect[depth] = 1; s = substr(s, 3); continue }
				if (depth > 0 && s ~ /;;$/) expect[depth] = 1
				return
			}
			p = close_paren(s)
			if (!p) return
			body = trim(substr(s, p + 1))
			expect[depth] = 0
			if (body == "") { pending = 1; return }
			if (body ~ /^;;/) { empty++; expect[depth] = 1; s = substr(body, 3); continue }
			arm(n, first(body), body)
			s = body
		}
		# in an arm body: a nested case, or its end (;;, or esac after a
		# last arm without one)
		if (s ~ /^esac/) { expect[depth] = 1; continue }
		if (s ~ /^case .* in( |$)/) {
			depth++
			expect[depth] = 1
			s = substr(s, index(s, " in") + 3)
			continue
		}
		k = index(s, ";;")
		if (!k) return
		expect[depth] = 1
		s = substr(s, k + 2)
	}
}
BEGIN {
	# the stripped script line k is the k-th line of the source that is
	# neither empty nor a comment
	while ((getline l < src) > 0) {
		srcno++
		t = trim(l)
		if (t == "" || t ~ /^#/) continue
		stripped++
		map[stripped] = srcno
	}
	while ((getline l < reached) > 0) {
		split(l, f, " ")
		seen[f[1], f[2]] = 1
		hit[f[1]] = 1
	}
}
{
	n = NR
	t = trim($0)
	text[n] = t
	if (pending && t != "") { arm(n, "", t); pending = 0 }
	# if/elif/else arms: the text after each then or else
	s = t
	while (match(s, /(^|; )(then|else)( |$)/)) {
		s = substr(s, RSTART + RLENGTH)
		body = trim(s)
		if (body == "") { pending = 1; break }
		# inline: its first command
		arm(n, first(body), body)
	}
	# case arms
	if (depth > 0) case_text(t, n)
	else if (t ~ /^case .* in( |$)/ || t ~ /[;&|] case .* in( |$)/) {
		k = index(t, "case ")
		depth = 1
		expect[1] = 1
		rest = substr(t, k)
		case_text(substr(rest, index(rest, " in") + 3), n)
	}
}
END {
	lines = NR
	for (i = 1; i <= narms; i++) {
		l = aline[i]
		if (aword[i] == "") ok = l in hit
		else if (aword[i] !~ /^\$/) ok = (l, aword[i]) in seen
		else {
			# its command is an expansion ("$@"): any command traced on
			# the line that is not the condition nor another arm
			split("", known)
			w = text[l]
			sub(/^(if|elif|while|until) /, "", w)
			known[first(w)] = 1
			for (j = 1; j <= narms; j++) if (aline[j] == l && j != i) known[aword[j]] = 1
			ok = 0
			for (k in seen) {
				split(k, kk, SUBSEP)
				if (kk[1] == l && !(kk[2] in known)) ok = 1
			}
		}
		if (ok) { got++; continue }
		where = (stripped == lines && (l in map)) ? name ":" map[l] : "script.sh:" l
		missed = missed sprintf("  %s: %s\n", where, substr(atext[i], 1, 100))
	}
	printf "branch arms reached: %d of %d (%.1f%%); %d empty case arms not counted\n", got, narms, narms ? 100 * got / narms : 0, empty
	if (missed != "") printf "never reached:\n%s", missed
}' "$dir/script.sh"
