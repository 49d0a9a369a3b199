package notifications

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seedSamples adds every testdata payload, once per kind, to f.
func seedSamples(f *testing.F, add func(kind string, body []byte)) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no samples: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, k := range allKinds {
			add(k, b)
		}
	}
}

func kindOf(i uint8) string { return allKinds[int(i)%len(allKinds)] }

// FuzzParse: no payload makes a parser panic, and whatever it accepts is an
// Event the store can keep (an ID, the payload as received).
func FuzzParse(f *testing.F) {
	seedSamples(f, func(kind string, body []byte) {
		for i, k := range allKinds {
			if k == kind {
				f.Add(uint8(i), "workflow_run", "delivery-1", body)
			}
		}
	})
	f.Add(uint8(1), "push", "", []byte(`{"ref":"refs/heads/x","commits":null}`))
	f.Fuzz(func(t *testing.T, k uint8, event, delivery string, body []byte) {
		src := Source{Name: "fz", Kind: kindOf(k), Secret: testSecret}
		h := http.Header{}
		h.Set("X-GitHub-Event", event)
		h.Set("X-Gitea-Event", event)
		h.Set("X-GitHub-Delivery", delivery)
		h.Set("X-Gitlab-Event-UUID", delivery)
		h.Set("X-Gitea-Delivery", delivery)
		ev, err := src.Parse(h, body, testNow)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		if ev.ID == "" || len(ev.ID) > 160 || string(ev.Payload) != string(body) {
			t.Fatalf("bad event: id %q, payload kept %v", ev.ID, string(ev.Payload) == string(body))
		}
	})
}

// FuzzVerify: no request makes a check panic or pass without the secret;
// a correctly signed request always passes; a refusal never shows the
// secret.
func FuzzVerify(f *testing.F) {
	seedSamples(f, func(kind string, body []byte) {
		for i, k := range allKinds {
			if k == kind {
				f.Add(uint8(i), "sha256=00", "1796025600", body)
			}
		}
	})
	f.Add(uint8(4), "sha256=zz", "-9223372036854775808", []byte{})
	f.Fuzz(func(t *testing.T, k uint8, sig, ts string, body []byte) {
		kind := kindOf(k)
		src := Source{Name: "fz", Kind: kind, Secret: testSecret}

		h := http.Header{}
		for _, name := range sigHeader {
			h.Set(name, sig)
		}
		h.Set(HeaderTimestamp, ts)
		err := src.Verify(h, body, sig, testNow)
		if err == nil && !strings.Contains(sig, testSecret) {
			t.Fatalf("%s: a guessed signature %q passed", kind, sig)
		}
		if err != nil {
			var se *SignatureError
			if !errors.As(err, &se) || strings.Contains(err.Error(), testSecret) {
				t.Fatalf("bad refusal: %v", err)
			}
		}

		good, ps := goodHeaders(kind, testSecret, body, testNow.Add(-time.Minute))
		if err := src.Verify(good, body, ps, testNow); err != nil {
			t.Fatalf("%s: a correctly signed request failed: %v", kind, err)
		}
	})
}
