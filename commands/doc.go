// Package commands is Summoner's one command tree: parsing, routing, help,
// permissions, confirmation of destructive commands and the audit log.
//
// The same definitions serve the Mattermost adapter, the local shell and the
// one-shot CLI, so help, permissions and behaviour cannot drift between them.
// Handlers call domain packages; this package never talks to a chat system
// directly, only through chat.Poster.
package commands
