# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# Generations: every successful rebuild is a numbered generation of the
# stack on this host; the state file keeps the newest `keep` of them with
# their images and what they were built from (`generation=GEN BUILT_AT HASH
# IMAGES NAMES BASES` lines, st_gens; an older rbuild's lines have no BASES:
# `-`), and `gen` names the one that runs.

# gen_get GEN: that kept generation into g_built, g_hash, g_images,
# g_names and g_bases; fails if it is not kept.
gen_get() {
	while read -r gg gb gh gi gn gx; do
		[ "$gg" = "$1" ] || continue
		g_built=$gb g_hash=$gh g_images=$gi g_names=$gn g_bases=${gx:--}
		return 0
	done <<EOF2
$st_gens
EOF2
	return 1
}

# gen_older GEN: the newest kept generation older than GEN, in g_older
# (fails if there is none).
gen_older() {
	g_older=
	while read -r gg _; do
		is_num "$gg" || continue
		if [ "$gg" -lt "$1" ] && { [ -z "$g_older" ] || [ "$gg" -gt "$g_older" ]; }; then g_older=$gg; fi
	done <<EOF2
$st_gens
EOF2
	[ -n "$g_older" ]
}

# gen_images: every kept generation's images, comma-joined (what no prune
# may remove).
gen_images() {
	gi_all=
	while read -r _ _ _ gi _; do
		[ -z "$gi" ] || [ "$gi" = - ] || gi_all="${gi_all:+$gi_all,}$gi"
	done <<EOF2
$st_gens
EOF2
	echo "${gi_all:--}"
}

# gen_add GEN BUILT_AT HASH IMAGES NAMES BASES KEEP: GEN becomes a kept
# generation (replacing one of that number) and only the KEEP newest stay,
# GEN among them; g_dropped is the images of those that go.
gen_add() {
	ga_new="$1 $2 $3 $4 $5 $6"
	ga_rest=$(echo "$st_gens" | awk -v g="$1" 'NF && $1 != g' | sort -n -r -k 1,1)
	g_dropped=
	ga_kept=1
	st_gens="$ga_new
"
	while read -r gg gb gh gi gn gx; do
		[ -n "$gg" ] || continue
		if [ "$ga_kept" -lt "$7" ]; then
			st_gens="$gg $gb $gh $gi $gn ${gx:--}
$st_gens"
			ga_kept=$((ga_kept + 1))
		elif [ "$gi" != - ]; then
			g_dropped="${g_dropped:+$g_dropped,}$gi"
		fi
	done <<EOF2
$ga_rest
EOF2
	: "${g_dropped:=-}"
}

# What a generation was built from (`bases`, PROTOCOL.md): the registry
# digest of every image it took from a registry, `REF@sha256:HEX` items,
# sorted and comma-joined; `none` when it took none, `-` when they could
# not be read.

# build_bases LOG: the base images of the build whose output is in LOG,
# comma-joined into b_bases (`-`: LOG could not be read). BuildKit's plain
# progress resolves the FROM of each stage to a line `#N [SVC STAGE 1/2]
# FROM REF@sha256:HEX` (a FROM line without a digest, BuildKit's `COPY
# --from=IMAGE`, tells none: left out); the legacy builder pulls each
# (`--pull`) and says `Digest: sha256:HEX` then `Status: ... for REF` (its
# `Step N/M : FROM` lines are as written, before ARG substitution). A REF
# pinned by digest is recorded as it is.
build_bases() {
	if ! b_bases=$(awk '
	function is_digest(d) { return length(d) == 71 && substr(d, 1, 7) == "sha256:" && substr(d, 8) !~ /[^0-9a-f]/ }
	{ sub(/\r$/, "") }
	/^#[0-9]+ / {
		w = 0
		if ($2 == "FROM") w = 3
		else if (substr($2, 1, 1) == "[") {
			for (i = 2; i < NF; i++) if ($i ~ /]$/) { if ($(i + 1) == "FROM") w = i + 2; break }
		}
		if (w && w <= NF && (a = index($w, "@")) && is_digest(substr($w, a + 1))) print $w
		next
	}
	# (the pull progress, cursor moves and all, may share the line)
	match($0, /Digest: sha256:[0-9a-f]+/) { d = substr($0, RSTART + 8, RLENGTH - 8); next }
	index($0, "Status: ") && (index($0, "Image is up to date for ") || index($0, "Downloaded newer image for ")) {
		if (is_digest(d)) { if (index($NF, "@sha256:")) print $NF; else print $NF "@" d }
		d = ""
	}' "$1"); then
		b_bases=-
		return 0
	fi
	b_bases=$(list_of "$b_bases")
}

# list_of LINES: the lines, sorted, without duplicates, comma-joined.
list_of() {
	printf '%s\n' "$1" | LC_ALL=C sort -u | awk 'NF { s = s (s == "" ? "" : ",") $0 } END { print s }'
}

# image_bases IMAGES NAMES: the registry digest of the image each service
# of IMAGES (`svc=id,...`) runs, as `NAME@sha256:HEX` (NAME from NAMES,
# `svc=name,...`: the name the service uses), comma-joined into i_bases, by
# one `docker image inspect` of them all. A built image (no RepoDigests)
# gives none. Fails (i_bases `-`) when the engine does not answer, or an
# image's digests name no repository of its name.
image_bases() {
	i_bases='' ib_ids=''
	[ "$1" != - ] || return 0
	rest=$1
	while [ -n "$rest" ]; do
		next_item
		case " $ib_ids " in *" ${item#*=} "*) ;; *) ib_ids="$ib_ids ${item#*=}" ;; esac
	done
	# shellcheck disable=SC2086 # split on purpose: image ids (hex words)
	if ! ib_out=$(dk image inspect --format '{{.Id}} {{range .RepoDigests}}{{.}} {{end}}' $ib_ids 2>>"$log") ||
		! i_bases=$(echo "$ib_out" | awk -v imgs="$1" -v names="$2" '
	# the repository of a name, as the engine lists it: no tag, no digest,
	# no docker.io/library/
	function repo(r) {
		sub(/@.*/, "", r)
		if (match(r, /:[^\/]*$/)) r = substr(r, 1, RSTART - 1)
		sub(/^(index\.)?docker\.io\//, "", r)
		sub(/^library\//, "", r)
		return r
	}
	{ line[$1] = $0 }
	END {
		n = split(names, p, ",")
		for (i = 1; i <= n; i++) name[substr(p[i], 1, index(p[i], "=") - 1)] = substr(p[i], index(p[i], "=") + 1)
		n = split(imgs, p, ",")
		for (i = 1; i <= n; i++) {
			s = substr(p[i], 1, index(p[i], "=") - 1)
			k = split(line[substr(p[i], index(p[i], "=") + 1)], f, " ")
			if (k < 2) continue
			if (!(s in name)) { bad = 1; continue }
			if (index(name[s], "@sha256:")) { print name[s]; continue }
			got = ""
			for (j = 2; j <= k; j++) if (repo(f[j]) == repo(name[s])) { got = substr(f[j], index(f[j], "@") + 1); break }
			if (got == "") bad = 1
			else print name[s] "@" got
		}
		exit bad
	}'); then
		i_bases=-
		return 1
	fi
	i_bases=$(list_of "$i_bases")
}

# kept_bases OLD PULLED: what the built services of a pull (no build) keep
# of the running generation's bases OLD: its items but those of a name
# pulled now (PULLED's), comma-joined (`-`: OLD was not recorded).
kept_bases() {
	case $1 in
	- | '') echo - ;;
	none) echo ;;
	*) echo "$1" | tr ',' '\n' | awk -v new="$2" '
		function ref(x) { sub(/@[^@]*$/, "", x); return x }
		BEGIN { n = split(new, a, ","); for (i = 1; i <= n; i++) drop[ref(a[i])] = 1 }
		!(ref($0) in drop) { s = s (s == "" ? "" : ",") $0 }
		END { print s }' ;;
	esac
}

# join_bases BUILD IMAGES: a generation's `bases` from its built services'
# (BUILD) and its images' (IMAGES) comma-joined items: sorted, without
# duplicates; `none` when both are empty, `-` when either is `-`.
join_bases() {
	case "$1|$2" in "-|"* | *"|-")
		echo -
		return
		;;
	esac
	jb=$(list_of "$(echo "$1,$2" | tr ',' '\n')")
	echo "${jb:-none}"
}
