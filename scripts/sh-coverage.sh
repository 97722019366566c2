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
# pattern); a command that goes on over lines (an open quote, a line that
# ends in `&&` or `|`) is traced at a later line of it, so there its word
# on one of the next five lines counts (a command substitution over lines
# is traced further on). An arm with no command (`pat) ;;`)
# is not counted. It prints the
# total, the arms reached by part, and every arm never reached, by its part
# and line (src/remote/sh/PART.sh:LINE): the script is its parts joined in
# the order of PARTS in src/remote/script.rs, stripped of empty and comment
# lines (its `shellcheck disable=` directives stay), so that its line k is
# the k-th such line of the parts. The
# operator commands (status, logs, history) run a script of fewer parts
# (OPERATOR_PARTS; their traces are trace.op.*, the script DIR/operator.sh):
# their lines are mapped through their part and line onto the whole
# script's.
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
# the parts, in the order src/remote/script.rs joins them
sed -n 's|.*include_str!("\(sh/[^"]*\)").*|src/remote/\1|p' src/remote/script.rs >"$dir/parts"
[ -s "$dir/parts" ] || {
	echo "no parts listed in src/remote/script.rs" >&2
	exit 1
}
# the operator script's parts: OPERATOR_PARTS, in the order of PARTS
ops=$(sed -n '/^const OPERATOR_PARTS/,/^];/s|^ *"\([^"]*\)",|\1|p' src/remote/script.rs | tr '\n' ' ')
: >"$dir/parts.op"
while read -r part; do
	case " $ops" in *" ${part##*/} "*) echo "$part" >>"$dir/parts.op" ;; esac
done <"$dir/parts"

# the traces, as "LINE WORD" (a command's first word, quotes dropped): the
# whole script's, and the operator script's
words() {
	awk '
	/^\++[0-9]+ / {
		sub(/^\++/, "")
		n = $1
		w = $2
		gsub(/\047/, "", w)
		if (match(w, /^[A-Za-z_][A-Za-z_0-9]*=/)) w = substr(w, 1, RLENGTH)
		if (!((n, w) in seen)) { seen[n, w] = 1; print n, w }
	}'
}
cat "$dir"/trace.full.* 2>/dev/null | words >"$dir/reached"
cat "$dir"/trace.op.* 2>/dev/null | words >"$dir/reached.op"

awk -v reached="$dir/reached" -v reached_op="$dir/reached.op" -v parts="$dir/parts" -v parts_op="$dir/parts.op" '
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
# whether s leaves a double quote open (a command that goes on over lines)
function open_quote(s,   t) { t = s; return gsub(/"/, "", t) % 2 }
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
	# the stripped script line k is the k-th line of the parts that is
	# neither empty nor a comment
	while ((getline part < parts) > 0) {
		srcno = 0
		while ((getline l < part) > 0) {
			srcno++
			t = trim(l)
			# (a `shellcheck disable=` directive stays in the shipped script)
			if (t == "" || (t ~ /^#/ && t !~ /^# shellcheck disable=/)) continue
			stripped++
			map[stripped] = part ":" srcno
			partof[stripped] = part
			line_of[part ":" srcno] = stripped
		}
		close(part)
	}
	# the operator script: its line k, through its part and line, is the
	# line line_of[...] of the whole script
	while ((getline part < parts_op) > 0) {
		srcno = 0
		while ((getline l < part) > 0) {
			srcno++
			t = trim(l)
			if (t == "" || (t ~ /^#/ && t !~ /^# shellcheck disable=/)) continue
			op++
			op_map[op] = line_of[part ":" srcno]
		}
		close(part)
	}
	while ((getline l < reached_op) > 0) {
		split(l, f, " ")
		if (!(f[1] in op_map)) continue
		seen[op_map[f[1]], f[2]] = 1
		hit[op_map[f[1]]] = 1
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
	# (the first command of an arm, past a shellcheck directive before it)
	if (pending && t != "" && t !~ /^# shellcheck disable=/) { arm(n, "", t); pending = 0 }
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
		if (aword[i] == "") {
			ok = l in hit
			# (traced at a later line of it, as below)
			if (!ok && open_quote(atext[i]))
				for (k = 1; k <= 3 && !ok; k++) ok = (l + k) in hit
		}
		else if (aword[i] !~ /^\$/) {
			ok = (l, aword[i]) in seen
			# bash traces a command that goes on over lines (an open
			# quote, a line ending in && or |) at a later line of it
			if (!ok && (open_quote(atext[i]) || text[l] ~ /(&&|\|\||\||\\)$/ || text[l - 1] ~ /(&&|\|\||\||\\)$/))
				for (k = 1; k <= 5 && !ok; k++) ok = (l + k, aword[i]) in seen
		}
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
		p = (stripped == lines && (l in partof)) ? partof[l] : "script.sh"
		pall[p]++
		if (ok) { got++; pgot[p]++; continue }
		where = (stripped == lines && (l in map)) ? map[l] : "script.sh:" l
		missed = missed sprintf("  %s: %s\n", where, substr(atext[i], 1, 100))
	}
	if (stripped != lines) printf "note: the parts have %d lines to ship, the traced script %d: arms are named by their line in script.sh\n", stripped, lines
	printf "branch arms reached: %d of %d (%.1f%%); %d empty case arms not counted\n", got, narms, narms ? 100 * got / narms : 0, empty
	for (p in pall) printf "  %-32s %3d of %3d\n", p, pgot[p], pall[p] | "sort"
	close("sort")
	if (missed != "") printf "never reached:\n%s", missed
}' "$dir/script.sh"
