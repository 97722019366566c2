# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# Generations: every successful rebuild is a numbered generation of the
# stack on this host; the state file keeps the newest `keep` of them with
# their images (`generation=GEN BUILT_AT HASH IMAGES NAMES` lines, st_gens),
# and `gen` names the one that runs.

# gen_get GEN: that kept generation into g_built, g_hash, g_images and
# g_names;
# fails if it is not kept.
gen_get() {
	while read -r gg gb gh gi gn; do
		[ "$gg" = "$1" ] || continue
		g_built=$gb g_hash=$gh g_images=$gi g_names=$gn
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

# gen_add GEN BUILT_AT HASH IMAGES NAMES KEEP: GEN becomes a kept generation
# (replacing one of that number) and only the KEEP newest stay, GEN among
# them; g_dropped is the images of those that go.
gen_add() {
	ga_new="$1 $2 $3 $4 $5"
	ga_rest=$(echo "$st_gens" | awk -v g="$1" 'NF && $1 != g' | sort -n -r -k 1,1)
	g_dropped=
	ga_kept=1
	st_gens="$ga_new
"
	while read -r gg gb gh gi gn; do
		[ -n "$gg" ] || continue
		if [ "$ga_kept" -lt "$6" ]; then
			st_gens="$gg $gb $gh $gi $gn
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
