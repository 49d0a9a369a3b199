// Package minions is Summoner's app catalog and its deployment: a minion is
// a folder with a compose file and a small minion.yml; the Engine renders it
// into containers and runs them through the Docker Engine API.
//
// Containers are found by their labels (summoner.minion, summoner.role,
// summoner.db), never by name. This package never talks to chat: it reports
// progress through a callback and returns results for commands to render.
package minions
