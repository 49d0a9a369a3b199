package notifications

import (
	"encoding/json"
	"time"
)

// Event is one accepted notification, normalised across providers so
// recipes can filter on the same fields whatever sent it.
type Event struct {
	// ID is unique per delivery: the provider's delivery id when it sends
	// one (X-GitHub-Delivery, X-Gitlab-Event-UUID, X-Gitea-Delivery), a
	// hash of the signed timestamp and body for generic sources, a random
	// one for slack and nextcloud, else a hash of the source and the body.
	// A second delivery with the same ID (or replay key, see
	// Source.ReplayKeys) is a replay and is dropped.
	ID       string    `json:"id"`
	Source   string    `json:"source"`  // the configured source's name
	Kind     string    `json:"kind"`    // gitlab, github, gitea, nextcloud, generic, slack, docker, maintenance
	Type     string    `json:"type"`    // normalised: push, pipeline, workflow_run, container_died, backup, message, ...
	Project  string    `json:"project"` // "group/repo", or the minion
	Ref      string    `json:"ref"`     // branch or tag, without refs/heads/
	Status   string    `json:"status"`  // success, failed, running, canceled, ...; "" when none
	URL      string    `json:"url"`     // link to the pipeline, commit or page
	Title    string    `json:"title"`   // one line for humans
	Text     string    `json:"text"`    // slack-style text, or details
	Channel  string    `json:"channel"` // a channel the sender asked for (slack), "" otherwise
	Received time.Time `json:"received"`
	// Payload is the provider's JSON as received, so templates can reach
	// fields this type does not name.
	Payload json.RawMessage `json:"payload,omitempty"`
}
