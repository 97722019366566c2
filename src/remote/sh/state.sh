# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# read_state NAME: load NAME.state into st_* variables (builtins only: the
# check reads it on every host of every run). st_version is the file's
# `version=`: `-` without one (an empty file, not an rbuild state file), `?`
# when it is no number. Versions 1 and 2 are read; version 1's
# `prev_images` and `images` become generations 1 and 2. A file without
# `bases=` (an older rbuild's) has st_bases `-`: not recorded.
# shellcheck disable=SC2034 # what the check does not read of st_* is for the parts after the cut
read_state() {
	st_exists=0 st_version=- st_hash=- st_built_at=0 st_last_result=- st_failed_hash=- st_failed_at=0
	st_images=- st_names=- st_prev_images=- st_cgroups=- st_leftover=- st_compose=-
	st_gen=- st_last_gen=0 st_gens='' st_attempt=- st_bases=-
	f=$state_dir/$1.state
	if [ ! -f "$f" ]; then
		# something that is not a file (a directory, a dangling link) is
		# not "never built": it is reported, and left alone
		if [ -e "$f" ] || [ -L "$f" ]; then st_exists=bad; fi
		return 0
	fi
	st_exists=1
	while IFS='=' read -r k v; do
		case $k in
		version) st_version=$v ;;
		hash) st_hash=$v ;;
		built_at) st_built_at=$v ;;
		last_result) st_last_result=$v ;;
		failed_hash) st_failed_hash=$v ;;
		failed_at) st_failed_at=$v ;;
		images) st_images=$v ;;
		names) st_names=$v ;;
		cgroups) st_cgroups=$v ;;
		leftover) st_leftover=$v ;;
		prev_images) st_prev_images=$v ;;
		compose) st_compose=$v ;;
		gen) st_gen=$v ;;
		last_gen) st_last_gen=$v ;;
		generation) st_gens="$st_gens$v
" ;;
		attempt) st_attempt=$v ;;
		bases) st_bases=$v ;;
		esac
	done <"$f"
	case $st_version in - | 1 | 2) ;; *[!0-9]*) st_version='?' ;; esac
	if [ "$st_version" = 1 ] && [ "$st_images" != - ]; then
		# version 1: the running images and the one generation kept
		if [ "$st_prev_images" != - ]; then
			st_gens="1 0 - $st_prev_images $st_names
2 $st_built_at $st_hash $st_images $st_names
" st_gen=2 st_last_gen=2
		else
			st_gens="1 $st_built_at $st_hash $st_images $st_names
" st_gen=1 st_last_gen=1
		fi
	fi
}

# read_phase NAME: the phase an attempt on NAME was in when it was cut off
# (its journal, NAME.journal, is there), in st_phase; `-` if none. An older
# rbuild's ship cut off left only its carry list (NAME.carry): `ship`.
read_phase() {
	st_phase=-
	if [ ! -f "$state_dir/$1.journal" ]; then
		[ ! -f "$state_dir/$1.carry" ] || st_phase=ship
		return 0
	fi
	while IFS='=' read -r k v; do
		if [ "$k" = phase ]; then st_phase=$v && break; fi
	done <"$state_dir/$1.journal"
	[ -n "$st_phase" ] || st_phase=-
}
