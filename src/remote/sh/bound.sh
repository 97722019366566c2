# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# Every command that could hang is bounded: the operator's commands and
# the engine's alike.

# bounded SECS CMD...: CMD, killed after SECS where `timeout` exists (its
# status is then 124).
bounded() {
	secs=$1
	shift
	if command -v timeout >/dev/null 2>&1; then timeout "$secs" "$@"; else "$@"; fi
}

