#!/usr/bin/env bash
# Installs a real Kubernetes API server for the tests: Debian's etcd, and
# kube-apiserver v1.20.2 built from Debian's source package (no registry here
# ships the binary). The result is cached in .tools/kube; a second run with the
# binary in place does nothing.
#
# Usage: scripts/kube-tools.sh [DEST]   (DEST defaults to .tools/kube)
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${1:-$PWD/.tools/kube}
K8S_VERSION=v1.20.2
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
STAMP="$DEST/bin/.kube-apiserver-$K8S_VERSION"
# The API server refuses loopback addresses in Endpoints, so the tests' pods
# get a documentation address (TEST-NET-1) on the loopback interface: it
# never leaves this machine.
POD_IP=192.0.2.10

SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO=sudo
fi

if ! ip -4 addr show dev lo | grep -q "inet $POD_IP/"; then
  $SUDO ip addr add "$POD_IP/32" dev lo
fi

if [ -x "$DEST/bin/kube-apiserver" ] && [ -f "$STAMP" ] && command -v etcd >/dev/null; then
  echo "kube-apiserver $K8S_VERSION: $DEST/bin/kube-apiserver"
  exit 0
fi

packages=(etcd-server etcd-client golang-1.19-go rsync jq make dpkg-dev
  golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# `apt-get source` needs a deb-src entry; reuse the mirror and key of the
# existing bookworm entry.
SRC_LIST=/etc/apt/sources.list.d/pilot-kube-src.sources
need_update=0
if [ ! -f "$SRC_LIST" ]; then
  uri=$(grep -hE '^URIs:.*debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}')
  key=$(grep -hE '^Signed-By:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}')
  uri=${uri:-http://deb.debian.org/debian}
  key=${key:-/usr/share/keyrings/debian-archive-keyring.gpg}
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: %s\n' "$uri" "$key" |
    $SUDO tee "$SRC_LIST" >/dev/null
  need_update=1
fi
if [ "${#missing[@]}" -gt 0 ] || [ "$need_update" = 1 ]; then
  $SUDO apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

WORK="$DEST/src"
mkdir -p "$WORK" "$DEST/bin"
cd "$WORK"
if ! ls kubernetes_*.orig.tar.* >/dev/null 2>&1; then
  apt-get source --download-only "kubernetes=$DEB_VERSION"
fi
TREE="$WORK/kubernetes-$K8S_VERSION"
if [ ! -d "$TREE/cmd/kube-apiserver" ]; then
  rm -rf "$TREE.tmp" && mkdir -p "$TREE.tmp"
  tar -xf kubernetes_*.orig.tar.* -C "$TREE.tmp" --strip-components=1
  mv "$TREE.tmp" "$TREE"
fi

# The vendored reflect2 1.0.1 crashes under Go 1.18+ on the first custom
# resource write; Debian's newer reflect2 and json-iterator work.
for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
  rm -rf "$TREE/vendor/$pkg"
  cp -r "/usr/share/gocode/src/$pkg" "$TREE/vendor/$pkg"
  find "$TREE/vendor/$pkg" -name '*_test.go' -delete
done

export HOME="$WORK/home"
mkdir -p "$HOME"
export PATH="/usr/lib/go-1.19/bin:$PATH"
export KUBE_GIT_VERSION=$K8S_VERSION KUBE_GIT_TREE_STATE=clean
make -C "$TREE" WHAT=cmd/kube-apiserver GOFLAGS=-tags=providerless GOLDFLAGS='-s -w'

install -m 0755 "$TREE/_output/bin/kube-apiserver" "$DEST/bin/kube-apiserver"
touch "$STAMP"
# The build tree is 1.3 GB; only the binary is needed from here on.
rm -rf "$TREE" "$HOME"
echo "kube-apiserver $K8S_VERSION: $DEST/bin/kube-apiserver"
