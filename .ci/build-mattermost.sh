#!/usr/bin/env bash
# Builds the Mattermost server v6.7.2 from the Go module proxy, once per machine.
# Prints the folder that holds bin/mattermost plus the i18n/ and templates/ it reads.
set -euo pipefail
MM_VERSION=v6.7.2
CACHE=${SUMMONER_CI_CACHE:-/var/cache/summoner-ci}
dest="$CACHE/mattermost-$MM_VERSION"
if [ -x "$dest/bin/mattermost" ]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$CACHE"
# Outside any module (and ignoring the caller's GOFLAGS), so that a go.mod
# being edited in the repository cannot break the download.
dir=$(cd "$CACHE" && GOFLAGS= GOWORK=off go mod download -json "github.com/mattermost/mattermost-server/v6@$MM_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "mattermost module download failed" >&2; exit 1; }
work="$dest.part"
rm -rf "$work"
cp -r "$dir" "$work"
chmod -R u+w "$work"
rm -rf "$work/vendor"
(cd "$work" && GOFLAGS=-mod=mod GOWORK=off go build -ldflags=-checklinkname=0 -o bin/mattermost ./cmd/mattermost) >&2
rm -rf "$dest"
mv "$work" "$dest"
echo "$dest"
