package chat

import (
	"context"
	"time"
)

// Message is one chat post addressed to the bot, with the address already
// stripped (the mention, the prefix) so Text is what the user asked for.
type Message struct {
	ID       string    // the post's ID in the chat system ("" in the shell)
	Text     string    // the command text, without the mention or prefix
	User     User      // who wrote it
	Channel  Channel   // where it was written
	ThreadID string    // the thread replies belong in ("" for none)
	At       time.Time // when the user posted it
	Received time.Time // when the adapter received it (for latency metrics)
}

// User is the author of a message.
type User struct {
	ID       string
	Username string
}

// Channel is where a message was posted.
type Channel struct {
	ID     string
	Name   string // the channel's handle ("town-square"); "" for direct messages
	Direct bool   // a direct message between the user and the bot
}

// Destination says where a post goes: a channel ID, optionally in a thread.
type Destination struct {
	ChannelID string
	ThreadID  string
}

// ReplyTo is the destination of a reply to m: its thread in its channel.
func (m Message) ReplyTo() Destination {
	return Destination{ChannelID: m.Channel.ID, ThreadID: m.ThreadID}
}

// PostRef identifies a post the bot made, so it can be edited later.
type PostRef struct {
	ID        string
	ChannelID string
}

// Handler deals with a message addressed to the bot.
//
// Adapters call Handle from their read loop, one message at a time, so it
// must return promptly: queue the command and run it elsewhere
// (commands.Queue does), or answer at once. When Handle returns, the
// adapter counts m as dealt with and will not hand it over again after a
// restart, so by then m must be answered or stored durably. After a crash
// in between, an adapter may still hand over again a message it gave just
// before; handlers that queue commands should skip a message ID they have
// already seen. ctx ends when the adapter shuts down.
type Handler interface {
	Handle(ctx context.Context, m Message)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m Message)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m Message) { f(ctx, m) }

// Poster posts replies and edits them in place. ReplyTo links the post to
// the message it answers, so an adapter can tell, after a restart, which
// commands were already answered.
type Poster interface {
	Post(ctx context.Context, to Destination, text string) (PostRef, error)
	Reply(ctx context.Context, m Message, text string) (PostRef, error)
	Update(ctx context.Context, ref PostRef, text string) error
}

// Adapter connects the bot to a chat system.
type Adapter interface {
	Poster
	// Run reads messages and hands them to h, in the order they were
	// posted, until ctx ends. It blocks, reconnecting with backoff when the
	// connection drops.
	Run(ctx context.Context, h Handler) error
}
