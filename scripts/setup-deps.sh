#!/usr/bin/env bash
# setup-deps.sh - install and start everything rbuild's tests need on a Debian 12
# machine, as root: a Docker engine (docker.io), Compose v1 (docker-compose 1.29),
# the Compose v2 plugin (2.26.1) and the buildx plugin (BuildKit builds; the
# version Debian trixie offers, 0.13.1 when written), both from Debian trixie,
# sshd, iptables, socat
# (registry forwarding for testhosts.sh's own-engine hosts), and a
# local image registry on 127.0.0.1:5000 holding a tiny test base image
# 127.0.0.1:5000/rbuild/busybox:1 (also tagged :latest).
#
# Usage: scripts/setup-deps.sh
#
# Idempotent: every step checks first and skips if already done, so a second run
# takes a couple of seconds. Progress lines go to stderr.
#
# Leaves running in the background:
#   dockerd            log: /tmp/rbuild-dockerd.log
#   docker-registry    config/storage/log under /tmp/rbuild-registry/
#
# Environment overrides (optional):
#   RBUILD_REGISTRY_DIR   registry dir (default /tmp/rbuild-registry)
#   RBUILD_DOCKERD_LOG    dockerd log file (default /tmp/rbuild-dockerd.log)
set -euo pipefail

REGISTRY_ADDR=127.0.0.1:5000
REGISTRY_DIR=${RBUILD_REGISTRY_DIR:-/tmp/rbuild-registry}
DOCKERD_LOG=${RBUILD_DOCKERD_LOG:-/tmp/rbuild-dockerd.log}
COMPOSE_V2_VERSION=2.26.1
COMPOSE_V2_DEB_VERSION=2.26.1-4
COMPOSE_V2_PLUGIN=/root/.docker/cli-plugins/docker-compose
BUILDX_PLUGIN=/root/.docker/cli-plugins/docker-buildx
BUILDX_TESTED_VERSION=0.13.1
BASE_IMAGE=$REGISTRY_ADDR/rbuild/busybox
TRIXIE_DIR=/tmp/trixie

PACKAGES=(
  docker.io docker-compose busybox-static openssh-server openssh-client
  iptables docker-registry curl ca-certificates procps util-linux iproute2
  zsh fish mksh socat tmux shellcheck
)

t0=$(date +%s.%N)
log() { printf 'setup-deps: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# --- 1. Debian packages ---------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  log "packages: all installed"
fi

# --- 2. dockerd -----------------------------------------------------------
if docker info >/dev/null 2>&1; then
  log "dockerd: already running"
else
  log "dockerd: starting (log $DOCKERD_LOG)"
  # setsid + nohup: keep it alive after this script (and its session) exit.
  setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  ok=
  for _ in $(seq 120); do
    if docker info >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.5
  done
  [ -n "$ok" ] || { tail -n 30 "$DOCKERD_LOG" >&2 || true; die "dockerd did not come up within 60 s"; }
  log "dockerd: up"
fi

# --- 3. Compose v2 plugin -------------------------------------------------
# trixie_deb PKG [VERSION]: download PKG (VERSION, or the version trixie
# offers) from Debian trixie through a second apt source list made from the
# machine's own; prints the .deb's path. A .deb already there is reused.
trixie_deb() {
  local pkg=$1 ver=${2:-} deb
  mkdir -p "$TRIXIE_DIR/lists/partial"
  # let apt's sandbox user write the download (avoids an "unsandboxed" warning)
  chown _apt "$TRIXIE_DIR" 2>/dev/null || true
  awk 'BEGIN{RS="";ORS="\n\n"} /Suites: bookworm bookworm-updates/' /etc/apt/sources.list.d/debian.sources \
    | sed 's/^Suites: .*/Suites: trixie/' >"$TRIXIE_DIR/debian.sources"
  [ -s "$TRIXIE_DIR/debian.sources" ] || die "could not derive a trixie source from /etc/apt/sources.list.d/debian.sources"
  local o=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$TRIXIE_DIR" -o "Dir::State::Lists=$TRIXIE_DIR/lists")
  if [ -n "$ver" ]; then
    deb="$TRIXIE_DIR/${pkg}_${ver}_amd64.deb"
    if [ ! -s "$deb" ]; then
      apt-get "${o[@]}" update -qq >&2
      (cd "$TRIXIE_DIR" && apt-get "${o[@]}" download -qq "$pkg=$ver" >&2)
    fi
  else
    # the version trixie offers now (its lists refreshed if missing or old)
    if ! compgen -G "$TRIXIE_DIR/lists/*_Packages*" >/dev/null \
      || [ -n "$(find "$TRIXIE_DIR/lists" -maxdepth 1 -name '*InRelease' -mtime +1 2>/dev/null)" ]; then
      apt-get "${o[@]}" update -qq >&2
    fi
    ver=$(apt-cache "${o[@]}" policy "$pkg" | awk '/Candidate:/ { print $2 }')
    case "$ver" in '' | '(none)') die "trixie offers no $pkg" ;; esac
    # apt names the file with the version's ':' as %3a (no epoch here)
    deb="$TRIXIE_DIR/${pkg}_${ver}_amd64.deb"
    [ -s "$deb" ] || (cd "$TRIXIE_DIR" && apt-get "${o[@]}" download -qq "$pkg=$ver" >&2)
  fi
  [ -s "$deb" ] || die "download of $pkg from trixie did not give $deb"
  printf '%s\n' "$deb"
}

if docker compose version >/dev/null 2>&1; then
  log "compose v2: already available ($(docker compose version --short 2>/dev/null || true))"
else
  log "compose v2: fetching docker-compose=$COMPOSE_V2_DEB_VERSION from trixie"
  deb=$(trixie_deb docker-compose "$COMPOSE_V2_DEB_VERSION")
  rm -rf "$TRIXIE_DIR/x"
  dpkg -x "$deb" "$TRIXIE_DIR/x"
  install -D -m 0755 "$TRIXIE_DIR/x/usr/libexec/docker/cli-plugins/docker-compose" "$COMPOSE_V2_PLUGIN"
  docker compose version >&2 || die "docker compose still not working"
  v=$(docker compose version --short)
  case "$v" in "$COMPOSE_V2_VERSION"*) ;; *) log "compose v2: WARNING version $v, expected $COMPOSE_V2_VERSION" ;; esac
fi

# --- 3b. buildx plugin (BuildKit) -------------------------------------------
# With it, `docker build` (and Compose v1's builds, which call `docker build`)
# use BuildKit, as on every current Docker install; Compose v2 builds with
# BuildKit either way. DOCKER_BUILDKIT=0 selects the legacy builder
# (testhosts.sh: RBUILD_TESTHOST_LEGACY_BUILDER).
if docker buildx version >/dev/null 2>&1; then
  log "buildx: already available ($(docker buildx version 2>/dev/null || true))"
else
  log "buildx: fetching docker-buildx (the version trixie offers) from trixie"
  deb=$(trixie_deb docker-buildx)
  rm -rf "$TRIXIE_DIR/xb"
  dpkg -x "$deb" "$TRIXIE_DIR/xb"
  install -D -m 0755 "$TRIXIE_DIR/xb/usr/libexec/docker/cli-plugins/docker-buildx" "$BUILDX_PLUGIN.new"
  mv -f "$BUILDX_PLUGIN.new" "$BUILDX_PLUGIN"
  rm -rf "$TRIXIE_DIR/xb"
  docker buildx version >&2 || die "docker buildx still not working"
  v=$(docker buildx version | awk '{ print $2 }')
  case "$v" in "$BUILDX_TESTED_VERSION"*) ;; *) log "buildx: WARNING version $v, tested with $BUILDX_TESTED_VERSION" ;; esac
fi

# --- 4. local registry ----------------------------------------------------
if curl -fsS -o /dev/null "http://$REGISTRY_ADDR/v2/" 2>/dev/null; then
  log "registry: already answering on $REGISTRY_ADDR"
else
  log "registry: starting on $REGISTRY_ADDR (dir $REGISTRY_DIR)"
  mkdir -p "$REGISTRY_DIR/data"
  cat >"$REGISTRY_DIR/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
  setsid nohup docker-registry serve "$REGISTRY_DIR/config.yml" >"$REGISTRY_DIR/registry.log" 2>&1 </dev/null &
  echo $! >"$REGISTRY_DIR/registry.pid"
  ok=
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null "http://$REGISTRY_ADDR/v2/" 2>/dev/null; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || { tail -n 30 "$REGISTRY_DIR/registry.log" >&2 || true; die "registry did not answer within 20 s"; }
  log "registry: up"
fi

# --- 5. test base image ---------------------------------------------------
have_tag() {
  curl -fsS -o /dev/null \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY_ADDR/v2/rbuild/busybox/manifests/$1" 2>/dev/null
}
if have_tag 1 && have_tag latest; then
  log "image: $BASE_IMAGE:1 and :latest already in registry"
else
  log "image: building $BASE_IMAGE:1"
  ctx=$(mktemp -d /tmp/rbuild-base.XXXXXX)
  trap 'rm -rf "$ctx"' EXIT
  cp /bin/busybox "$ctx/busybox"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /tmp"]
CMD ["/bin/sh", "-c", "exec sleep 1000000"]
EOF
  # Legacy builder: works with any client/engine combination, no buildx needed.
  DOCKER_BUILDKIT=0 docker build -q -t "$BASE_IMAGE:1" "$ctx" >&2
  docker tag "$BASE_IMAGE:1" "$BASE_IMAGE:latest"
  docker push -q "$BASE_IMAGE:1" >&2
  docker push -q "$BASE_IMAGE:latest" >&2
  if ! have_tag 1 || ! have_tag latest; then die "push did not land in the registry"; fi
  log "image: pushed $BASE_IMAGE:1 and :latest"
fi

t1=$(date +%s.%N)
log "done in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
