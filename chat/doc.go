// Package chat defines how Summoner talks to people: a Message comes in, a
// Handler deals with it, and an Adapter posts and edits replies.
//
// Adapters (Mattermost, the local shell) live in subpackages. Nothing here
// knows about commands; the commands package never knows which adapter runs.
package chat
