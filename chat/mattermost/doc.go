// Package mattermost connects Summoner to a Mattermost server: a websocket
// for live posts, the REST API for replies, edits and for the posts missed
// while the bot was away.
//
// It answers each command exactly once: it remembers, per channel, up to
// which post everything was handled (a state file), tags every reply with the
// post it answers, and on (re)connect fetches what it missed and skips what
// it already answered. It must never log or return the bot's token.
package mattermost
