// Package minions is Summoner's app catalog and its deployment: a minion is
// a folder with a compose file and a small minion.yml; the Engine renders it
// into containers and runs them through the Docker Engine API.
//
// Containers are found by their labels (summoner.minion, summoner.role,
// summoner.db), never by name. This package never talks to chat: it reports
// progress through a callback and returns results for commands to render.
// Nor does it know the gateway: with a Gateway hook set it binds the web and
// routed ports to 127.0.0.1 only, tells the hook after every change, and
// lists Endpoints; cmd/bot turns those into the gateway's routes.
package minions
