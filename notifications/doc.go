// Package notifications is Summoner's notification centre: incoming
// webhooks from the team's tools (sources), checked and persisted before
// they are acknowledged, turned by recipes into chat messages, commands or
// forwards. A command the queue refuses is never dropped: its run waits in
// the event store and is tried again (pending.go). It never imports chat:
// messages leave through a Poster the daemon wires to the persistent outbox.
package notifications
