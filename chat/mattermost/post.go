package mattermost

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/chat"
)

// maxRunes is what one post may hold (Mattermost's limit, with room to spare).
const maxRunes = model.PostMessageMaxRunesV2 - 100

// maxParts is how many posts a long reply may take before it becomes a file.
const maxParts = 4

// Post posts text to a channel, in a thread if to.ThreadID is set.
func (a *Adapter) Post(ctx context.Context, to chat.Destination, text string) (chat.PostRef, error) {
	return a.post(ctx, to, nil, text, true)
}

// Reply answers m in its thread, tagged so a restarted bot knows m was
// answered.
func (a *Adapter) Reply(ctx context.Context, m chat.Message, text string) (chat.PostRef, error) {
	if a.o.OnReply != nil {
		a.o.OnReply(m, time.Now())
	}
	return a.post(ctx, m.ReplyTo(), model.StringInterface{replyProp: m.ID}, text, true)
}

// post sends text, split over several posts in the thread when it is longer
// than Mattermost allows, or attached as a file when even that is too long.
// It returns the first post, the one progress edits go to. props tag every
// post; retrying keeps trying while the server is away (the outbox, which
// retries on its own, passes false).
func (a *Adapter) post(ctx context.Context, to chat.Destination, props model.StringInterface, text string, retrying bool) (chat.PostRef, error) {
	parts := split(text, maxRunes)
	if len(parts) > maxParts {
		return a.postAsFile(ctx, to, props, text)
	}
	var first chat.PostRef
	for i, part := range parts {
		p := &model.Post{ChannelId: to.ChannelID, RootId: to.ThreadID, Message: part, PendingPostId: a.pendingID()}
		if len(props) > 0 {
			p.SetProps(props)
		}
		var created *model.Post
		send := func() (err error) {
			// The same pending ID on every try lets the server drop a
			// duplicate if an earlier try did land.
			created, err = a.api.createPost(ctx, p)
			return err
		}
		var err error
		if retrying {
			err = retry(ctx, send)
		} else {
			err = send()
		}
		if err != nil {
			return first, fmt.Errorf("posting part %d of %d: %w", i+1, len(parts), err)
		}
		if i == 0 {
			first = chat.PostRef{ID: created.Id, ChannelID: to.ChannelID}
		}
	}
	return first, nil
}

func (a *Adapter) postAsFile(ctx context.Context, to chat.Destination, props model.StringInterface, text string) (chat.PostRef, error) {
	fileID, err := a.api.uploadFile(ctx, to.ChannelID, "reply.txt", []byte(text))
	if err != nil {
		return chat.PostRef{}, fmt.Errorf("attaching a long reply: %w", err)
	}
	lines := strings.Count(text, "\n") + 1
	p := &model.Post{ChannelId: to.ChannelID, RootId: to.ThreadID, FileIds: model.StringArray{fileID},
		Message: fmt.Sprintf("The answer is long (%d lines), so it is attached as reply.txt.", lines)}
	if len(props) > 0 {
		p.SetProps(props)
	}
	created, err := a.api.createPost(ctx, p)
	if err != nil {
		return chat.PostRef{}, fmt.Errorf("posting a long reply: %w", err)
	}
	return chat.PostRef{ID: created.Id, ChannelID: to.ChannelID}, nil
}

// Update edits a post in place (progress). Text too long for one post is
// cut there with a note, and posted in full in the post's thread.
func (a *Adapter) Update(ctx context.Context, ref chat.PostRef, text string) error {
	if utf8.RuneCountInString(text) <= maxRunes {
		if err := retry(ctx, func() error { return a.api.patchPost(ctx, ref.ID, text) }); err != nil {
			return fmt.Errorf("editing post %s: %w", ref.ID, err)
		}
		return nil
	}
	if err := a.api.patchPost(ctx, ref.ID, "The answer is long; it follows in this thread."); err != nil {
		return fmt.Errorf("editing post %s: %w", ref.ID, err)
	}
	root := ref.ID
	var p model.Post
	if err := a.api.do(ctx, "GET", "/posts/"+ref.ID, nil, &p); err == nil && p.RootId != "" {
		root = p.RootId
	}
	_, err := a.post(ctx, chat.Destination{ChannelID: ref.ChannelID, ThreadID: root}, nil, text, true)
	return err
}

// split cuts text into pieces of at most limit runes, at line ends where it
// can, and closes and reopens ``` code blocks across the cut.
func split(text string, limit int) []string {
	if utf8.RuneCountInString(text) <= limit {
		return []string{text}
	}
	var (
		parts  []string
		cur    strings.Builder
		n      int
		inCode bool
	)
	const closeFence, openFence = "\n```", "```\n"
	flush := func() {
		s := cur.String()
		if inCode {
			s += closeFence
		}
		parts = append(parts, strings.TrimRight(s, "\n"))
		cur.Reset()
		n = 0
		if inCode {
			cur.WriteString(openFence)
			n = len(openFence)
		}
	}
	budget := limit - len(closeFence) - len(openFence)
	for _, line := range strings.SplitAfter(text, "\n") {
		for utf8.RuneCountInString(line) > budget { // a single huge line
			if n > 0 {
				flush()
			}
			r := []rune(line)
			cur.WriteString(string(r[:budget-n]))
			line = string(r[budget-n:])
			n = budget
			flush()
		}
		ln := utf8.RuneCountInString(line)
		if n+ln > budget {
			flush()
		}
		cur.WriteString(line)
		n += ln
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
		}
	}
	if n > 0 {
		s := cur.String()
		parts = append(parts, strings.TrimRight(s, "\n"))
	}
	return parts
}

// pendingID is a client-side post ID in the form the web app uses
// ("<user id>:<unix ms>"), plus a counter so two posts in one millisecond
// differ.
func (a *Adapter) pendingID() string {
	id := "summoner"
	if me := a.me.Load(); me != nil {
		id = me.Id
	}
	return fmt.Sprintf("%s:%d%03d", id, time.Now().UnixMilli(), a.pending.Add(1)%1000)
}
