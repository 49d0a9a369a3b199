package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/minions"
)

// fakeMinions is the engine and the gateway as the mattermost and https
// steps see them: a Mattermost that answers its ping once summoned, a
// withheld mark, and a gateway that serves the host once it is published.
type fakeMinions struct {
	mu       sync.Mutex
	calls    []string
	up       bool // Mattermost answers on loopback
	accounts bool // it has accounts (NoAccounts false)
	withheld bool
	routed   bool // the gateway has the route (the last table had it)
	certs    bool // the CA gives a certificate
}

func (f *fakeMinions) call(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeMinions) Summon(ctx context.Context, name, version string, settings map[string]string, progress minions.Progress) (*minions.Result, error) {
	f.call("summon " + name)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up = true
	f.routed = !f.withheld // the engine tells the gateway after a summon
	return &minions.Result{Minion: name, Version: "6.7.2", URL: "plain HTTP on 127.0.0.1:" + settings["HTTP_PORT"] + ", from this server only"}, nil
}

func (f *fakeMinions) Withhold(ctx context.Context, name string) error {
	f.call("withhold " + name)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.withheld, f.routed = true, false
	return nil
}

func (f *fakeMinions) Publish(ctx context.Context, name string) error {
	f.call("publish " + name)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.withheld, f.routed = false, f.up
	return nil
}

func (f *fakeMinions) Withheld(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.withheld, nil
}

func (f *fakeMinions) ServesNow(ctx context.Context, host string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return host == "chat.example.test" && f.routed && f.certs
}

// ServeHTTP is Mattermost on loopback: its ping, and whether it has
// accounts.
func (f *fakeMinions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	up, accounts := f.up, f.accounts
	f.mu.Unlock()
	if !up {
		http.Error(w, "not up", http.StatusBadGateway)
		return
	}
	switch r.URL.Path {
	case "/api/v4/system/ping":
		fmt.Fprint(w, `{"status":"OK"}`)
	case "/api/v4/config/client":
		fmt.Fprintf(w, `{"NoAccounts":"%t"}`, !accounts)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeMinions) history() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// claimStep stands for the accounts step: done once it has made the admin.
type claimStep struct {
	f        *fakeMinions
	applyErr error
}

func (s *claimStep) Name() string  { return "accounts" }
func (s *claimStep) Title() string { return "Create the admin" }
func (s *claimStep) Done(context.Context) (bool, string, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if !s.f.accounts {
		return false, "no state file yet", nil
	}
	return true, "admin admin", nil
}

func (s *claimStep) Apply(ctx context.Context, say func(string, ...any)) error {
	s.f.call("create the admin")
	if s.applyErr != nil {
		return s.applyErr
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.accounts = true
	return nil
}

func mattermostSteps(t *testing.T, f *fakeMinions) (*Mattermost, *claimStep, *HTTPS) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	mm := &Mattermost{Engine: f, Port: u.Port(), Wait: time.Minute}
	acc := &claimStep{f: f}
	https := &HTTPS{Engine: f, Host: "chat.example.test", Gateway: f, Claimed: acc.Done, Wait: time.Minute}
	return mm, acc, https
}

// Claimed before public: Mattermost is withheld before it is summoned, the
// admin is made while no route exists, and only then the https step
// publishes it. A run that stops between leaves no route, and the next
// one finishes; a last run changes nothing.
func TestMattermostClaimedBeforePublic(t *testing.T) {
	f := &fakeMinions{certs: true}
	mm, acc, https := mattermostSteps(t, f)
	acc.applyErr = context.Canceled // the run is interrupted in the accounts step

	out, _, err := run(t, &Runner{Steps: []Step{mm, acc, https}})
	var fl *Failure
	if !errors.As(err, &fl) || fl.Step != "accounts" {
		t.Fatalf("first run: %v, want a failure at accounts\n%s", err, out)
	}
	if got, want := f.history(), []string{"withhold mattermost", "summon mattermost", "create the admin"}; !slices.Equal(got, want) {
		t.Errorf("first run: %q, want %q", got, want)
	}
	if f.routed || !f.withheld {
		t.Errorf("after the interrupted run: routed %v, withheld %v; want no route", f.routed, f.withheld)
	}
	if !strings.Contains(out, "[1/3] mattermost: done") || !strings.Contains(out, "from this server only") {
		t.Errorf("first run said:\n%s", out)
	}

	// The https step alone refuses while Mattermost has no admin.
	err = https.Apply(context.Background(), func(string, ...any) {})
	var se *StepError
	if !errors.As(err, &se) || !strings.Contains(se.Why, "stays closed") || !strings.Contains(se.Why, "no state file yet") {
		t.Fatalf("https before the accounts: %v", err)
	}
	if f.routed || slices.Contains(f.history(), "publish mattermost") {
		t.Fatal("the https step published an unclaimed Mattermost")
	}

	acc.applyErr = nil
	out, _, err = run(t, &Runner{Steps: []Step{mm, acc, https}})
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if got, want := f.history()[3:], []string{"create the admin", "publish mattermost"}; !slices.Equal(got, want) {
		t.Errorf("second run: %q, want %q", got, want)
	}
	for _, w := range []string{"[1/3] mattermost: already done", "[2/3] accounts: done", "[3/3] https: done", "Mattermost answers at https://chat.example.test"} {
		if !strings.Contains(out, w) {
			t.Errorf("second run lacks %q:\n%s", w, out)
		}
	}

	n := len(f.history())
	out, _, err = run(t, &Runner{Steps: []Step{mm, acc, https}})
	if err != nil || len(f.history()) != n || strings.Count(out, ": already done") != 3 {
		t.Errorf("third run: %v, calls %q\n%s", err, f.history()[n:], out)
	}
}

// A Mattermost left public without accounts (by an older bootstrap) is
// not done: it is withheld. One with accounts and a route is left alone.
func TestMattermostLeftPublicWithoutAdmin(t *testing.T) {
	ctx := context.Background()
	f := &fakeMinions{up: true, routed: true, certs: true}
	mm, _, _ := mattermostSteps(t, f)
	done, what, err := mm.Done(ctx)
	if done || err != nil || !strings.Contains(what, "no admin yet") {
		t.Fatalf("Done = %v, %q, %v; want not done, no admin", done, what, err)
	}
	if err := mm.Apply(ctx, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if f.routed || !f.withheld {
		t.Errorf("after Apply: routed %v, withheld %v", f.routed, f.withheld)
	}
	if done, _, err := mm.Done(ctx); !done || err != nil {
		t.Errorf("Done after Apply = %v, %v", done, err)
	}

	g := &fakeMinions{up: true, routed: true, accounts: true}
	mm, _, _ = mattermostSteps(t, g)
	if done, what, err := mm.Done(ctx); !done || err != nil || !strings.Contains(what, "has its accounts") {
		t.Errorf("claimed and public: Done = %v, %q, %v", done, what, err)
	}
	if len(g.history()) != 0 {
		t.Errorf("Done changed something: %q", g.history())
	}
}

// No certificate in time: the https step fails with what to check, and
// stays not done; the route stays open (the admin exists).
func TestHTTPSNoCertificate(t *testing.T) {
	f := &fakeMinions{up: true, accounts: true, withheld: true}
	_, _, https := mattermostSteps(t, f)
	https.Wait = 50 * time.Millisecond
	err := https.Apply(context.Background(), func(string, ...any) {})
	var se *StepError
	if !errors.As(err, &se) || !strings.Contains(se.Why, "no certificate for chat.example.test") || !strings.Contains(se.Next, "DNS") {
		t.Fatalf("Apply: %v", err)
	}
	if done, _, _ := https.Done(context.Background()); done {
		t.Error("done without a certificate")
	}
	if !f.routed {
		t.Error("the route was not published")
	}
}
