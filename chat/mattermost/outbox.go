package mattermost

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/outbox"
)

// outboxProp tags every post the outbox delivers with its key, so a post
// whose creation answer was lost (a crash, a server restart) is found, not
// sent twice.
const outboxProp = "summoner_outbox"

// Sender delivers the outbox's posts through the adapter.
type Sender struct{ a *Adapter }

var _ outbox.Sender = Sender{}

// OutboxSender is the adapter as the outbox's delivery end.
func (a *Adapter) OutboxSender() Sender { return Sender{a: a} }

// Send creates the post (split, or attached as a file, when long), once:
// the outbox does the retrying.
func (s Sender) Send(ctx context.Context, m outbox.Msg) (string, error) {
	channel, err := s.channel(ctx, m.Channel)
	if err != nil {
		return "", err
	}
	props := model.StringInterface{}
	for k, v := range m.Props {
		props[k] = v
	}
	props[outboxProp] = m.Key
	if m.ReplyTo != "" {
		props[replyProp] = m.ReplyTo
	}
	if m.ReplyTo != "" && s.a.o.OnReply != nil {
		s.a.o.OnReply(chat.Message{ID: m.ReplyTo}, time.Now())
	}
	ref, err := s.a.post(ctx, chat.Destination{ChannelID: channel, ThreadID: m.ThreadID}, props, m.Text, false)
	if err != nil {
		return "", err
	}
	return ref.ID, nil
}

// Edit replaces a post's text.
func (s Sender) Edit(ctx context.Context, channel, postID, text string) error {
	id, err := s.channel(ctx, channel)
	if err != nil {
		return err
	}
	return s.a.Update(ctx, chat.PostRef{ID: postID, ChannelID: id}, text)
}

// Find looks among the channel's posts since since for one tagged key.
func (s Sender) Find(ctx context.Context, channel, key string, since time.Time) (string, bool, error) {
	id, err := s.channel(ctx, channel)
	if err != nil {
		return "", false, err
	}
	// Paged, like catch-up: ?since= returns at most 1,000 posts, in no
	// order, so a busy channel could hide the post and it would go twice.
	found := ""
	err = s.a.walkBack(ctx, id, since.UnixMilli(), func(p *model.Post) {
		if k, _ := p.GetProp(outboxProp).(string); k == key && p.DeleteAt == 0 && found == "" {
			found = p.Id
		}
	})
	if err != nil {
		return "", false, err
	}
	return found, found != "", nil
}

// channel resolves "~name" (a channel of the bot's team) to its ID.
func (s Sender) channel(ctx context.Context, c string) (string, error) {
	if !strings.HasPrefix(c, "~") {
		return c, nil
	}
	team, err := s.a.team(ctx)
	if err != nil {
		return "", err
	}
	ch, err := s.a.api.channelByName(ctx, team, strings.TrimPrefix(c, "~"))
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusForbidden) {
		return "", fmt.Errorf("channel %s: %w (or the bot is not a member of it)", c, errNoChannel)
	}
	if err != nil {
		return "", fmt.Errorf("channel %s: %w", c, err)
	}
	return ch.Id, nil
}

// Permanent tells the outbox which failures retrying cannot fix: the server
// refused the post itself (the bot is not in the channel, the channel is
// gone). Unreachable servers, 5xx and rate limits are worth retrying.
func Permanent(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests && ae.Status != http.StatusUnauthorized
	}
	return errors.Is(err, errNoChannel)
}

// errNoChannel marks a channel name that does not resolve.
var errNoChannel = errors.New("no such channel")
