# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# Shipping replaces only what rbuild ships. A stack's directory DIR may hold
# what its containers wrote (a bind-mounted data directory, uploads) and
# what `.rbuildignore` keeps from shipping: all that stays. The manifest
# (STATE_DIR/NAME.files: `dir=DIR`, then `d PATH` or `f PATH` a line) lists
# what rbuild shipped there last time.
#
# A ship unpacks the payload beside DIR (STAGE), lists in STATE_DIR/NAME.carry
# every entry of DIR that rbuild did not ship and does not ship now, renames
# those into STAGE (the same inode: running containers keep their mounts),
# then renames DIR to OLD and STAGE into place. An undo puts every entry
# that rbuild does not ship back into OLD, renames DIR aside (DEAD), OLD
# back into place, and only then removes DEAD. Every step is a rename, and
# restore_files finishes whichever was cut off: the old copy is never
# removed before it is back in place, and no entry rbuild did not ship is
# ever removed.

# file_paths: where a stack's files live during a ship (from $dir and $n).
file_paths() {
	parent=${dir%/*}
	[ -n "$parent" ] || parent=/
	base=${dir##*/}
	old=$parent/.$base.rbuild-old
	stage=$parent/.$base.rbuild-stage
	dead=$parent/.$base.rbuild-dead
	manifest=$state_dir/$n.files
	carry=$state_dir/$n.carry
	journal=$state_dir/$n.journal
}

# paths_of DIR: `d PATH` or `f PATH` for every entry below DIR, parents
# first.
paths_of() {
	(cd "$1" && find . ! -name . -type d | sed 's|^\./|d |' && find . ! -name . ! -type d | sed 's|^\./|f |')
}

# owns_dir: the manifest says rbuild shipped to $dir. (A stack built by an
# rbuild from before manifests has none: its recorded build says the
# directory is rbuild's, and nothing of it is removed by this first ship.)
owns_dir() {
	if [ -f "$manifest" ]; then
		read -r first <"$manifest" && [ "$first" = "dir=$dir" ]
	else
		[ "$st_hash" != - ]
	fi
}

# unshipped DIR OLD_LIST: the top-most entries of DIR that neither the
# manifest OLD_LIST (what rbuild shipped before; /dev/null for none) nor the
# new manifest ($manifest.new) lists.
unshipped() {
	paths_of "$1" | awk -v old="$2" -v new="$manifest.new" '
		BEGIN {
			while ((getline l < old) > 0) if (l !~ /^dir=/) shipped[substr(l, 3)] = 1
			while ((getline l < new) > 0) if (l !~ /^dir=/) now[substr(l, 3)] = 1
		}
		{
			p = substr($0, 3); q = p
			while ((i = match(q, /\/[^\/]*$/)) > 0) { q = substr(q, 1, i - 1); if (q in carried) next }
			if ((p in shipped) || (p in now)) next
			carried[p] = 1; print p
		}'
}

# move_entries LIST FROM TO: move each path of LIST from FROM to TO, where
# it is in FROM and not yet in TO.
move_entries() {
	while IFS= read -r p; do
		{ [ -e "$2/$p" ] || [ -L "$2/$p" ]; } || continue
		{ [ -e "$3/$p" ] || [ -L "$3/$p" ]; } && continue
		case $p in */*) mkdir -p "$3/${p%/*}" ;; esac
		mv "$2/$p" "$3/$p"
	done <"$1"
}

# move_unshipped FROM TO: every entry of FROM that rbuild does not ship now
# (carried ones, and what the new containers wrote) into TO.
move_unshipped() {
	unshipped "$1" /dev/null >"$carry.back" && move_entries "$carry.back" "$1" "$2"
	rm -f "$carry.back"
}

# mode_of DIR: DIR's permission bits in octal, from `ls -ld`.
mode_of() {
	read -r mo _ <<EOF
$(ls -ld "$1")
EOF
	mo=${mo#?} d=''
	for _ in 1 2 3; do
		v=0
		case $mo in r*) v=$((v + 4)) ;; esac
		case $mo in ?w*) v=$((v + 2)) ;; esac
		case $mo in ??[xst]*) v=$((v + 1)) ;; esac
		d=$d$v mo=${mo#???}
	done
	echo "$d"
}

# ship: unpack the stack's files and swap them in; sets result, detail and
# cause and fails if nothing could be done.
ship() {
	adopted=0
	if [ -d "$dir" ] && ! owns_dir && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
		if [ "$adopt" != 1 ]; then
			result=failed cause=not_ours
			detail="$dir already holds files that rbuild did not put there; nothing was changed"
			return 1
		fi
		adopted=1
	fi
	first_ship=0
	[ -e "$dir" ] || first_ship=1
	if ! journal ship; then
		result=failed detail="could not write the journal in $state_dir: $write_err"
		no_space "$write_err"
		return 1
	fi
	# -m: files get the time they land here, not the controller's. The
	# builder caches a build context by path, size and time: a file shipped
	# twice in one second at one size would otherwise be taken for the old
	# one. A stack with a dir_mode of its own unpacks under that mode's
	# umask (a user other than root gets the files' modes less the umask).
	if ! err=$({ mkdir -p "$parent" && rm -rf "$stage" && mkdir "$stage" &&
		(umask "$ship_umask" && tar -xmof "$payload" -C "$stage" "$n"); } 2>&1); then
		rm -rf "$stage"
		end_journal
		result=failed detail="could not unpack the stack beside $dir: $err"
		no_space "$err"
		return 1
	fi
	# an adopted directory keeps its mode
	if [ "$adopted" = 1 ] && [ "$dir_mode" = 700 ]; then
		chmod "$(mode_of "$dir")" "$stage/$n"
	else
		chmod 700 "$stage/$n"
	fi
	if ! perms_err=$(set_perms "$stage/$n"); then
		rm -rf "$stage"
		end_journal
		result=failed detail="could not give $dir its dir_mode $dir_mode or dir_group $dir_group: $perms_err"
		return 1
	fi
	old_list=/dev/null
	[ -f "$manifest" ] && owns_dir && old_list=$manifest
	if ! err=$({ { echo "dir=$dir" && paths_of "$stage/$n"; } >"$manifest.new" &&
		if [ -d "$dir" ]; then unshipped "$dir" "$old_list" >"$carry.tmp"; else : >"$carry.tmp"; fi &&
		mv -f "$carry.tmp" "$carry"; } 2>&1); then
		rm -rf "$stage" "$manifest.new" "$carry.tmp"
		end_journal
		result=failed detail="could not list the files of $dir in $state_dir: $err"
		no_space "$err"
		return 1
	fi
	if ! keep_mounted; then
		restore_files
		end_journal
		result=failed detail="could not list the files of $dir in $state_dir"
		return 1
	fi
	at ship.staged
	move_entries "$carry.keep" "$dir" "$stage/$n"
	move_entries "$carry" "$dir" "$stage/$n"
	at ship.carried
	if [ -e "$dir" ] && ! mv "$dir" "$old"; then
		restore_files
		end_journal
		result=failed detail="could not move $dir aside"
		return 1
	fi
	at ship.old_aside
	mv "$stage/$n" "$dir" && rmdir "$stage"
	at ship.swapped
}

# content_of PATH: what is in a file or a directory tree, as text that is
# the same for the same content (names, and each file's cksum).
content_of() {
	if [ -d "$1" ]; then
		(cd "$1" && find . | LC_ALL=C sort && find . -type f -exec cksum {} + | LC_ALL=C sort)
	else
		cksum <"$1"
	fi
}

# keep_mounted: for what the services mount of the stack's directory
# ($mount_list): a path whose content this ship does not change keeps its
# inode (it goes into the new copy instead of the one unpacked, listed in
# NAME.carry.keep, and comes back on an undo), so a container that mounts
# it is left alone; the services a changed path of which they mount are
# $remount_services, recreated after the `up` (see up_stack).
keep_mounted() {
	remount_services='' km_list=''
	rest=$mount_list
	while [ -n "$rest" ]; do
		km_item=${rest%%+*}
		if [ "$km_item" = "$rest" ]; then rest=; else rest=${rest#*+}; fi
		km_svc=${km_item%%@*} km_path=${km_item#*@}
		if [ "$km_path" != . ] && [ -e "$dir/$km_path" ] && [ -e "$stage/$n/$km_path" ] &&
			[ "$(content_of "$dir/$km_path")" = "$(content_of "$stage/$n/$km_path")" ]; then
			case "
$km_list" in *"
$km_path
"*) ;; *) km_list="$km_list$km_path
" ;; esac
			continue
		fi
		case " $remount_services " in *" $km_svc "*) ;; *) remount_services="$remount_services $km_svc" ;; esac
	done
	# a kept path replaces the one unpacked (listed first, for an undo)
	printf '%s' "$km_list" >"$carry.keep.tmp" && mv -f "$carry.keep.tmp" "$carry.keep" || return 1
	while IFS= read -r km_path; do
		[ -z "$km_path" ] || rm -rf "${stage:?}/$n/$km_path"
	done <"$carry.keep"
}

# restore_files: the files as they were before the attempt: DIR the old
# copy, with every entry rbuild did not ship in it, from wherever a ship or
# an undo (this one's, or one cut off) left them. A first ship has no old
# copy: its files stay (what its containers wrote may be there) and are
# rbuild's from now on.
restore_files() {
	if [ ! -f "$carry" ]; then
		# nothing was moved yet
		rm -rf "$stage"
		return 0
	fi
	if [ "$first_ship" = 1 ]; then
		[ -e "$dir" ] || [ ! -d "$stage/$n" ] || mv "$stage/$n" "$dir"
		[ ! -f "$manifest.new" ] || mv -f "$manifest.new" "$manifest"
	elif [ -d "$old" ]; then
		# the old copy is aside: what rbuild does not ship goes back into
		# it from the new copy, wherever that is, and it goes back
		for src in "$dir" "$stage/$n" "$dead"; do
			[ ! -d "$src" ] || [ ! -f "$carry.keep" ] || move_entries "$carry.keep" "$src" "$old"
			[ ! -d "$src" ] || move_unshipped "$src" "$old"
		done
		at undo.carried
		[ ! -e "$dir" ] || mv "$dir" "$dead"
		at undo.new_aside
		mv "$old" "$dir"
		at undo.old_back
	else
		# the old copy is in place (the swap had not happened, or an undo
		# put it back)
		if [ -d "$stage/$n" ]; then
			[ ! -f "$carry.keep" ] || move_entries "$carry.keep" "$stage/$n" "$dir"
			move_entries "$carry" "$stage/$n" "$dir"
		fi
		[ ! -d "$dead" ] || move_unshipped "$dead" "$dir"
	fi
	rm -rf "$stage" "$dead" "$manifest.new"
	rm -f "$carry" "$carry.keep"
}

# commit_files: the shipped files stay: the old copy goes, the manifest
# lists what was shipped. Only after the state names the new generation.
commit_files() {
	[ -f "$carry" ] || return 0
	rm -rf "$old" "$stage" "$dead"
	[ ! -f "$manifest.new" ] || mv -f "$manifest.new" "$manifest"
	rm -f "$carry" "$carry.keep"
}

# stack_options OPTIONS: a stack's options (`-`, or `KEY=VALUE` words
# joined by `,`, validated by the controller): dir_mode, dir_group,
# zero_downtime (services, `:`-joined), lock_wait (seconds), oneshot
# (services the gate waits for to exit 0, `:`-joined), mounts (what
# services mount of the stack's directory: `SVC@PATH` joined by `+`), keep
# (generations that keep their images); ship_umask follows dir_mode.
stack_options() {
	dir_mode=700 dir_group='' zd_services='' lock_wait=0 one_shots='' keep=2 watch=0 mount_list=
	# (- : not known, until a ship compares what is mounted)
	remount_services=-
	rest=$1
	[ "$rest" != - ] || rest=''
	while [ -n "$rest" ]; do
		next_item
		case $item in
		dir_mode=*) dir_mode=${item#*=} ;;
		dir_group=*) dir_group=${item#*=} ;;
		zero_downtime=*) zd_services=${item#*=} ;;
		lock_wait=*) lock_wait=${item#*=} ;;
		oneshot=*) one_shots=":${item#*=}:" ;;
		keep=*) keep=${item#*=} ;;
		mounts=*) mount_list=${item#*=} ;;
		watch=*) watch=${item#*=} ;;
		esac
	done
	is_num "$keep" && [ "$keep" -ge 1 ] || keep=2
	is_num "$watch" || watch=0
	ship_umask=$(printf '%03o' $((0777 & ~0$dir_mode)))
}

# set_perms DIR: the shipped tree gets the stack's dir_mode (its
# directories; files keep their own modes, env files 0600) and dir_group
# (every shipped entry). The default (0700, the user's group) changes
# nothing.
set_perms() {
	if [ "$dir_mode" != 700 ]; then
		find "$1" -type d -exec chmod "$dir_mode" {} + 2>&1 || return 1
	fi
	if [ -n "$dir_group" ]; then
		chgrp -R "$dir_group" "$1" 2>&1 || return 1
	fi
}
