package notifications

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers Summoner defines for the kinds that have no header of their own.
const (
	// HeaderSecret carries a Nextcloud source's secret. Nextcloud's
	// webhook_listeners app cannot sign, but its registration (OCS API,
	// POST /ocs/v2.php/apps/webhook_listeners/api/v1/webhooks) takes
	// custom headers: register with authMethod "header" and authData
	// {"X-Summoner-Secret": "<secret>"} (or headers with the same map).
	HeaderSecret = "X-Summoner-Secret"
	// HeaderSignature is the generic kind's "sha256=<hex>" HMAC-SHA256,
	// keyed with the secret, of "<timestamp>.<body>".
	HeaderSignature = "X-Summoner-Signature"
	// HeaderTimestamp is the generic kind's signing time in Unix seconds.
	HeaderTimestamp = "X-Summoner-Timestamp"
)

// MaxSkew is how far a generic timestamp may be from now: a captured
// request replayed later than this is refused.
const MaxSkew = 5 * time.Minute

// SignatureError says a request failed its source's check. Its message
// names the source and what was wrong, never the secret or the expected
// signature, so it can be logged and returned as is.
type SignatureError struct {
	Source string
	Reason string // e.g. "missing X-Hub-Signature-256 header"
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("webhook for source %s refused: %s", e.Source, e.Reason)
}

// Verify checks a request for s before anything parses its body. For slack
// sources pathSecret is the last URL path element; other kinds ignore it.
// All comparisons take constant time.
func (s Source) Verify(h http.Header, body []byte, pathSecret string, now time.Time) error {
	fail := func(format string, a ...any) error {
		return &SignatureError{Source: s.Name, Reason: fmt.Sprintf(format, a...)}
	}
	if s.Secret == "" {
		// A source with no secret would accept anyone: refuse rather
		// than trust Validate to have run.
		return fail("source has no secret")
	}
	switch s.Kind {
	case KindGitLab:
		return s.checkToken(h, "X-Gitlab-Token", fail)
	case KindNextcloud:
		return s.checkToken(h, HeaderSecret, fail)
	case KindSlack:
		if !equalString(pathSecret, s.Secret) {
			return fail("wrong secret in the URL")
		}
		return nil
	case KindGitHub:
		return s.checkHMAC(h, "X-Hub-Signature-256", "sha256=", body, fail)
	case KindGitea:
		return s.checkHMAC(h, "X-Gitea-Signature", "", body, fail)
	case KindGeneric:
		ts := h.Get(HeaderTimestamp)
		if ts == "" {
			return fail("missing %s header", HeaderTimestamp)
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return fail("%s is not Unix seconds", HeaderTimestamp)
		}
		// Compare in seconds: time.Unix of a huge value would overflow.
		if d := now.Unix() - sec; d > int64(MaxSkew/time.Second) || d < -int64(MaxSkew/time.Second) {
			return fail("%s is more than %s from now", HeaderTimestamp, MaxSkew)
		}
		signed := make([]byte, 0, len(ts)+1+len(body))
		signed = append(append(append(signed, ts...), '.'), body...)
		return s.checkHMAC(h, HeaderSignature, "sha256=", signed, fail)
	}
	return fail("unknown kind %q", s.Kind)
}

// signsBody tells whether the kind's check covers the body, which must
// then be read before the sender is known; the other kinds are checked on
// a header or the path alone.
func (s Source) signsBody() bool {
	switch s.Kind {
	case KindGitLab, KindNextcloud, KindSlack:
		return false
	}
	return true
}

func (s Source) checkToken(h http.Header, name string, fail func(string, ...any) error) error {
	got := h.Get(name)
	if got == "" {
		return fail("missing %s header", name)
	}
	if !equalString(got, s.Secret) {
		return fail("wrong %s", name)
	}
	return nil
}

func (s Source) checkHMAC(h http.Header, name, prefix string, signed []byte, fail func(string, ...any) error) error {
	got := h.Get(name)
	if got == "" {
		return fail("missing %s header", name)
	}
	hexSig, ok := strings.CutPrefix(got, prefix)
	if !ok {
		return fail("%s does not start with %q", name, prefix)
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil {
		return fail("%s is not hexadecimal", name)
	}
	mac := hmac.New(sha256.New, []byte(s.Secret))
	mac.Write(signed)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return fail("wrong %s", name)
	}
	return nil
}

// equalString compares through hashes so that neither the content nor the
// length of the secret leaks through timing.
func equalString(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// Sign returns the generic kind's headers for body, signed at t: what a
// sender (or a test) sets.
func Sign(secret string, body []byte, t time.Time) http.Header {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	h := http.Header{}
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	return h
}
