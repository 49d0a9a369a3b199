#!/bin/sh
# As the official image's entrypoint: flags alone run the server with them.
if [ "${1#-}" != "$1" ]; then
  set -- mattermost "$@"
fi
exec "$@"
