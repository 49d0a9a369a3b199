// Package chattest records what the bot posts, for unit tests of anything
// that replies in chat. It is not a chat server: integration tests use the
// real Mattermost.
package chattest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/summoner-bot/summoner/chat"
)

// Post is one recorded post, with its edits applied.
type Post struct {
	ID      string
	To      chat.Destination
	ReplyTo string // the message ID it answers, "" for plain posts
	Text    string
	Edits   int
}

// Recorder is a chat.Poster that keeps every post in memory.
type Recorder struct {
	mu    sync.Mutex
	posts []*Post
	// Fail, when set, makes every call return it.
	Fail error
}

var _ chat.Poster = (*Recorder)(nil)

// Post records a plain post.
func (r *Recorder) Post(_ context.Context, to chat.Destination, text string) (chat.PostRef, error) {
	return r.add(to, "", text)
}

// Reply records a reply to m.
func (r *Recorder) Reply(_ context.Context, m chat.Message, text string) (chat.PostRef, error) {
	return r.add(m.ReplyTo(), m.ID, text)
}

func (r *Recorder) add(to chat.Destination, replyTo, text string) (chat.PostRef, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Fail != nil {
		return chat.PostRef{}, r.Fail
	}
	p := &Post{ID: fmt.Sprintf("post%d", len(r.posts)+1), To: to, ReplyTo: replyTo, Text: text}
	r.posts = append(r.posts, p)
	return chat.PostRef{ID: p.ID, ChannelID: to.ChannelID}, nil
}

// Update edits a recorded post.
func (r *Recorder) Update(_ context.Context, ref chat.PostRef, text string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Fail != nil {
		return r.Fail
	}
	for _, p := range r.posts {
		if p.ID == ref.ID {
			p.Text = text
			p.Edits++
			return nil
		}
	}
	return fmt.Errorf("no post %s", ref.ID)
}

// Posts returns copies of the posts so far.
func (r *Recorder) Posts() []Post {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Post, len(r.posts))
	for i, p := range r.posts {
		out[i] = *p
	}
	return out
}

// Last is the text of the newest post, "" if none.
func (r *Recorder) Last() string {
	ps := r.Posts()
	if len(ps) == 0 {
		return ""
	}
	return ps[len(ps)-1].Text
}

// Transcript joins every post's text, one per line.
func (r *Recorder) Transcript() string {
	var b strings.Builder
	for _, p := range r.Posts() {
		b.WriteString(p.Text + "\n")
	}
	return b.String()
}
