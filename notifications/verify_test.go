package notifications

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testSecret = "s3cret-s3cret-s3cret"

var testNow = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

func hexMAC(secret string, data []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(data)
	return hex.EncodeToString(m.Sum(nil))
}

// goodHeaders returns the headers a well-configured sender of kind sets for
// body, and the slack path secret.
func goodHeaders(kind, secret string, body []byte, now time.Time) (http.Header, string) {
	h := http.Header{}
	switch kind {
	case KindGitLab:
		h.Set("X-Gitlab-Token", secret)
	case KindNextcloud:
		h.Set(HeaderSecret, secret)
	case KindGitHub:
		h.Set("X-Hub-Signature-256", "sha256="+hexMAC(secret, body))
	case KindGitea:
		h.Set("X-Gitea-Signature", hexMAC(secret, body))
	case KindGeneric:
		h = Sign(secret, body, now)
	case KindSlack:
		return h, secret
	}
	return h, ""
}

// sigHeader is the header that carries the check, for the "missing" cases.
var sigHeader = map[string]string{
	KindGitLab: "X-Gitlab-Token", KindNextcloud: HeaderSecret, KindGitHub: "X-Hub-Signature-256",
	KindGitea: "X-Gitea-Signature", KindGeneric: HeaderSignature,
}

var allKinds = []string{KindGitLab, KindGitHub, KindGitea, KindNextcloud, KindGeneric, KindSlack}

func TestVerify(t *testing.T) {
	body := []byte(`{"type":"x"}`)
	for _, kind := range allKinds {
		src := Source{Name: "src-" + kind, Kind: kind, Secret: testSecret}
		t.Run(kind+"/good", func(t *testing.T) {
			h, ps := goodHeaders(kind, testSecret, body, testNow)
			if err := src.Verify(h, body, ps, testNow); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
		t.Run(kind+"/wrong secret", func(t *testing.T) {
			h, ps := goodHeaders(kind, "another-secret-value", body, testNow)
			expectSigErr(t, src, src.Verify(h, body, ps, testNow))
		})
		t.Run(kind+"/tampered body", func(t *testing.T) {
			h, ps := goodHeaders(kind, testSecret, body, testNow)
			err := src.Verify(h, []byte(`{"type":"y"}`), ps, testNow)
			switch kind {
			case KindGitLab, KindNextcloud, KindSlack: // tokens do not cover the body
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
			default:
				expectSigErr(t, src, err)
			}
		})
		t.Run(kind+"/missing", func(t *testing.T) {
			h, _ := goodHeaders(kind, testSecret, body, testNow)
			h.Del(sigHeader[kind])
			expectSigErr(t, src, src.Verify(h, body, "", testNow))
		})
	}
}

func TestVerifyGenericTimestamp(t *testing.T) {
	src := Source{Name: "ci", Kind: KindGeneric, Secret: testSecret}
	body := []byte(`{"type":"x"}`)
	for _, tc := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"now", testNow, true},
		{"4 minutes ago", testNow.Add(-4 * time.Minute), true},
		{"4 minutes ahead", testNow.Add(4 * time.Minute), true},
		{"6 minutes ago", testNow.Add(-6 * time.Minute), false},
		{"6 minutes ahead", testNow.Add(6 * time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := src.Verify(Sign(testSecret, body, tc.at), body, "", testNow)
			if tc.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tc.ok {
				expectSigErr(t, src, err)
			}
		})
	}
	t.Run("timestamp not signed over", func(t *testing.T) {
		// A fresh timestamp on an old signature must fail.
		h := Sign(testSecret, body, testNow.Add(-time.Hour))
		h.Set(HeaderTimestamp, strconv.FormatInt(testNow.Unix(), 10))
		expectSigErr(t, src, src.Verify(h, body, "", testNow))
	})
	t.Run("huge timestamp", func(t *testing.T) {
		h := Sign(testSecret, body, testNow)
		h.Set(HeaderTimestamp, "9223372036854775807")
		expectSigErr(t, src, src.Verify(h, body, "", testNow))
	})
}

// expectSigErr checks err is a *SignatureError that reveals neither the
// secret nor the MAC the request should have carried.
func expectSigErr(t *testing.T, src Source, err error) {
	t.Helper()
	var se *SignatureError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *SignatureError", err)
	}
	msg := err.Error()
	for _, body := range []string{`{"type":"x"}`, `{"type":"y"}`} {
		expected := hexMAC(src.Secret, []byte(body))
		if strings.Contains(msg, expected) || strings.Contains(msg, expected[:16]) {
			t.Fatalf("error reveals the expected MAC: %q", msg)
		}
	}
	if strings.Contains(msg, src.Secret) || strings.Contains(msg, src.Secret[:8]) {
		t.Fatalf("error reveals the secret: %q", msg)
	}
	if !strings.Contains(msg, src.Name) {
		t.Fatalf("error %q does not name the source", msg)
	}
}

func TestVerifyNoSecret(t *testing.T) {
	src := Source{Name: "open", Kind: KindGitLab}
	h := http.Header{}
	h.Set("X-Gitlab-Token", "")
	var se *SignatureError
	if err := src.Verify(h, nil, "", testNow); !errors.As(err, &se) {
		t.Fatalf("a source without a secret accepted a request: %v", err)
	}
}
