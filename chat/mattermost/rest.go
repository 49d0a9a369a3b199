package mattermost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"
)

// ErrUnauthorized means the server refused the token: wrong, revoked, or
// the bot account is disabled. Retrying does not help.
var ErrUnauthorized = errors.New("the Mattermost server rejected the token")

// APIError is an error answer from the REST API.
type APIError struct {
	Method, Path string
	Status       int
	Message      string // the server's message for users
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// api is a small REST client that, unlike model.Client4 in v6, honours a
// context on every call.
type api struct {
	base  string // https://host[:port][/subpath], no trailing slash
	token string
	hc    *http.Client
}

func (a *api) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	return a.send(ctx, method, path, "application/json", r, out)
}

func (a *api) send(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+"/api/v4"+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, scrubURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		_, _ = io.Copy(io.Discard, resp.Body)
		return ErrUnauthorized
	}
	if resp.StatusCode >= 300 {
		var ae model.AppError
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &ae) == nil && ae.Message != "" {
			msg = ae.Message
		}
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: msg}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// scrubURLError drops the request URL's query from transport errors; ours
// carry no secret there today, but a log line should not depend on that.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (a *api) me(ctx context.Context) (*model.User, error) {
	var u model.User
	if err := a.do(ctx, http.MethodGet, "/users/me", nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

func (a *api) myTeams(ctx context.Context) ([]*model.Team, error) {
	var ts []*model.Team
	return ts, a.do(ctx, http.MethodGet, "/users/me/teams", nil, &ts)
}

func (a *api) myChannels(ctx context.Context, teamID string) ([]*model.Channel, error) {
	var cs []*model.Channel
	return cs, a.do(ctx, http.MethodGet, "/users/me/teams/"+teamID+"/channels", nil, &cs)
}

func (a *api) channelByName(ctx context.Context, teamID, name string) (*model.Channel, error) {
	var c model.Channel
	return &c, a.do(ctx, http.MethodGet, "/teams/"+teamID+"/channels/name/"+url.PathEscape(name), nil, &c)
}

func (a *api) teamByName(ctx context.Context, name string) (*model.Team, error) {
	var t model.Team
	return &t, a.do(ctx, http.MethodGet, "/teams/name/"+url.PathEscape(name), nil, &t)
}

func (a *api) channel(ctx context.Context, id string) (*model.Channel, error) {
	var c model.Channel
	return &c, a.do(ctx, http.MethodGet, "/channels/"+id, nil, &c)
}

func (a *api) user(ctx context.Context, id string) (*model.User, error) {
	var u model.User
	return &u, a.do(ctx, http.MethodGet, "/users/"+id, nil, &u)
}

// postsBefore lists up to perPage posts of the channel (replies included,
// deleted ones not), newest first: the newest of all when before is "",
// else those created before post before's millisecond. The threads they
// belong to are not fetched along: catch-up reads every post anyway.
func (a *api) postsBefore(ctx context.Context, channelID, before string, perPage int) (*model.PostList, error) {
	q := url.Values{"per_page": {fmt.Sprint(perPage)}, "skipFetchThreads": {"true"}}
	if before != "" {
		q.Set("before", before)
	}
	var l model.PostList
	return &l, a.do(ctx, http.MethodGet, "/channels/"+url.PathEscape(channelID)+"/posts?"+q.Encode(), nil, &l)
}

// usersByNames looks usernames up; names with no account are left out.
func (a *api) usersByNames(ctx context.Context, names []string) ([]*model.User, error) {
	var us []*model.User
	return us, a.do(ctx, http.MethodPost, "/users/usernames", names, &us)
}

// usersByIDs looks accounts up by ID, deactivated ones included (their
// DeleteAt is set); unknown IDs are left out.
func (a *api) usersByIDs(ctx context.Context, ids []string) ([]*model.User, error) {
	var us []*model.User
	return us, a.do(ctx, http.MethodPost, "/users/ids", ids, &us)
}

func (a *api) createPost(ctx context.Context, p *model.Post) (*model.Post, error) {
	var out model.Post
	return &out, a.do(ctx, http.MethodPost, "/posts", p, &out)
}

func (a *api) patchPost(ctx context.Context, id, message string) error {
	return a.do(ctx, http.MethodPut, "/posts/"+id+"/patch", &model.PostPatch{Message: &message}, nil)
}

func (a *api) uploadFile(ctx context.Context, channelID, name string, data []byte) (string, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	if err := w.WriteField("channel_id", channelID); err != nil {
		return "", err
	}
	part, err := w.CreateFormFile("files", name)
	if err != nil {
		return "", err
	}
	if _, err := part.Write(data); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	var out model.FileUploadResponse
	if err := a.send(ctx, http.MethodPost, "/files", w.FormDataContentType(), &body, &out); err != nil {
		return "", err
	}
	if len(out.FileInfos) != 1 {
		return "", fmt.Errorf("uploading %s: the server returned %d files", name, len(out.FileInfos))
	}
	return out.FileInfos[0].Id, nil
}

// transient tells whether a failed call may work if tried again: the
// server was unreachable or answered 5xx. A refusal (4xx) will not change.
func transient(err error) bool {
	var ae *APIError
	switch {
	case err == nil, errors.Is(err, ErrUnauthorized), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &ae):
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
	}
	return true
}

// retryFor is how long a reply is retried while the server is away (a
// restart), so a command's answer is not lost.
const retryFor = 90 * time.Second

// retry calls f until it succeeds, fails for good, or retryFor passes.
func retry(ctx context.Context, f func() error) error {
	b := Backoff{Min: 250 * time.Millisecond, Max: 10 * time.Second}
	deadline := time.Now().Add(retryFor)
	for n := 0; ; n++ {
		err := f()
		if !transient(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(b.Delay(n)):
		}
	}
}
