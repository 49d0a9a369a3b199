package notifications

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
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

// One fuzz target per kind, so each parser gets the whole fuzzing time in
// CI (.ci/fuzz.sh runs them one after the other).
func FuzzParseGitLab(f *testing.F)    { fuzzParse(f, KindGitLab) }
func FuzzParseGitHub(f *testing.F)    { fuzzParse(f, KindGitHub) }
func FuzzParseGitea(f *testing.F)     { fuzzParse(f, KindGitea) }
func FuzzParseNextcloud(f *testing.F) { fuzzParse(f, KindNextcloud) }
func FuzzParseGeneric(f *testing.F)   { fuzzParse(f, KindGeneric) }
func FuzzParseSlack(f *testing.F)     { fuzzParse(f, KindSlack) }

// fuzzParse: no payload makes the kind's parser panic, and whatever it
// accepts is an Event the store can keep (an ID, the payload as received).
// The seeds are every sample (the providers' documented payloads among
// them) under each event name the samples use.
func fuzzParse(f *testing.F, kind string) {
	events := []string{"", "push", "workflow_run", "workflow_job", "pull_request", "ping", "Pipeline Hook"}
	seedSamples(f, func(k string, body []byte) {
		if k == kind {
			for _, e := range events {
				f.Add(e, "delivery-1", body)
			}
		}
	})
	f.Add("push", "", []byte(`{"ref":"refs/heads/x","commits":null}`))
	f.Add("form", "", []byte(`payload=%7B%22text%22%3A%22x%22%7D`))
	f.Add("workflow_run", "", []byte(`{"workflow_run":{"created_at":1,"run_number":"2","head_branch":"main"}}`))
	f.Add("", "", []byte(`{"object_kind":"pipeline","object_attributes":{"created_at":"x","status":"failed"},"builds":[{"duration":"?"}]}`))
	f.Add("", "", []byte(`{"object_kind":"build","commit":{"id":"a"},"build_started_at":7}`))
	f.Fuzz(func(t *testing.T, event, delivery string, body []byte) {
		src := Source{Name: "fz", Kind: kind, Secret: testSecret}
		h := http.Header{}
		h.Set("X-GitHub-Event", event)
		h.Set("X-Gitea-Event", event)
		h.Set("X-Gitlab-Event", event)
		h.Set("X-GitHub-Delivery", delivery)
		h.Set("X-Gitlab-Event-UUID", delivery)
		h.Set("X-Gitea-Delivery", delivery)
		if strings.HasPrefix(event, "form") {
			h.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		ev, err := src.Parse(h, body, testNow)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		if ev.ID == "" || len(ev.ID) > 160 || ev.Kind != kind || ev.Type == "" {
			t.Fatalf("bad event: id %q, kind %q, type %q", ev.ID, ev.Kind, ev.Type)
		}
		if kind != KindSlack && string(ev.Payload) != string(body) {
			t.Fatal("the payload was not kept as received")
		}
		again, err := src.Parse(h, body, testNow)
		if kind == KindSlack || kind == KindNextcloud {
			// Each request is its own event: only the ID differs.
			if again.ID == ev.ID {
				t.Fatalf("two requests share the ID %s", ev.ID)
			}
			again.ID = ev.ID
		}
		if err != nil || !reflect.DeepEqual(again, ev) {
			t.Fatalf("a second parse differs: %+v, %v", again, err)
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
