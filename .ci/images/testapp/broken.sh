#!/bin/sh
# testapp @VERSION@, broken on purpose: fails at once, as a bad release would.
echo "testapp @VERSION@: config error" >&2
exit 1
