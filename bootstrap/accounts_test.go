package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mattermost/mattermost-server/v6/model"
)

// The real server is in accounts_integration_test.go; this fake only
// serves the failures a real server does not give easily: a refused config
// update, and settings an MM_* variable keeps off.
type fakeMM struct {
	cfg        *model.Config
	updateCode int  // the answer to PUT /config (200: saved)
	ignore     bool // 200 but the settings stay as they were (an env override)
	updates    int
}

func (f *fakeMM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v4/users/login":
		w.Header().Set(model.HeaderToken, "session-token")
		_ = json.NewEncoder(w).Encode(&model.User{Id: "admin-id", Username: "admin", Roles: model.SystemAdminRoleId + " " + model.SystemUserRoleId})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v4/config":
		_ = json.NewEncoder(w).Encode(f.cfg)
	case r.Method == http.MethodPut && r.URL.Path == "/api/v4/config":
		f.updates++
		if f.updateCode != http.StatusOK {
			w.WriteHeader(f.updateCode)
			_ = json.NewEncoder(w).Encode(model.NewAppError("updateConfig", "api.config.update_config.restricted_merge.app_error", nil, "", f.updateCode))
			return
		}
		var cfg model.Config
		if err := json.NewDecoder(r.Body).Decode(&cfg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if !f.ignore {
			f.cfg = &cfg
		}
		_ = json.NewEncoder(w).Encode(f.cfg)
	default:
		w.WriteHeader(http.StatusNotImplemented)
		_ = json.NewEncoder(w).Encode(model.NewAppError("fake", "not.served", nil, r.Method+" "+r.URL.Path, http.StatusNotImplemented))
	}
}

const testPassword = "Secret-Admin-Pass-42"

func fakeAccounts(t *testing.T, f *fakeMM) *Accounts {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := &model.Config{}
	cfg.SetDefaults()
	cfg.ServiceSettings.EnableBotAccountCreation = model.NewBool(false)
	cfg.ServiceSettings.AllowedUntrustedInternalConnections = model.NewString("10.0.0.0/8")
	cfg.TeamSettings.EnableOpenServer = model.NewBool(true) // anyone may register
	f.cfg = cfg
	state := filepath.Join(t.TempDir(), "accounts.json")
	if err := os.WriteFile(state, []byte(`{"admin_username": "admin", "admin_password": "`+testPassword+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return &Accounts{
		URL: srv.URL, Team: "main", OpsChannel: "ops", BotUsername: "summoner",
		CallbackURL: "http://127.0.0.1:8079/mattermost/slash", StatePath: state,
	}
}

func TestAccountsConfigUpdateRefused(t *testing.T) {
	f := &fakeMM{updateCode: http.StatusForbidden}
	a := fakeAccounts(t, f)
	err := a.Apply(context.Background(), func(string, ...any) {})
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("Apply: %v, want a StepError", err)
	}
	if !strings.Contains(se.Why, "refused the config update") || !strings.Contains(se.Why, "bot accounts on") ||
		!strings.Contains(se.Why, "open registration off (EnableOpenServer)") ||
		!strings.Contains(se.Why, "untrusted internal connections to 127.0.0.1") || !strings.Contains(se.Why, "403") {
		t.Errorf("why = %q", se.Why)
	}
	if !strings.Contains(se.Next, "System Console") {
		t.Errorf("next = %q", se.Next)
	}
	if strings.Contains(se.Why+se.Next, testPassword) {
		t.Error("the failure shows the admin's password")
	}
	done, what, err := a.Done(context.Background())
	if done || err != nil || !strings.Contains(what, "settings to change") || !strings.Contains(what, "open registration off") {
		t.Errorf("Done = %v, %q, %v; want not done, settings to change", done, what, err)
	}
}

func TestAccountsConfigKeptOff(t *testing.T) {
	f := &fakeMM{updateCode: http.StatusOK, ignore: true}
	a := fakeAccounts(t, f)
	err := a.Apply(context.Background(), func(string, ...any) {})
	var se *StepError
	if !errors.As(err, &se) || !strings.Contains(se.Why, "kept these settings as they were") || !strings.Contains(se.Why, "open registration off") || !strings.Contains(se.Next, "MM_*") {
		t.Fatalf("Apply: %#v, want the settings kept off", err)
	}
	if f.updates != 1 {
		t.Errorf("%d config updates, want 1", f.updates)
	}
}

// The update keeps what is there: the hosts already allowed, and every
// other setting as read.
func TestAccountsTurnOnKeepsAllowList(t *testing.T) {
	a := &Accounts{CallbackURL: "http://127.0.0.1:8079/mattermost/slash"}
	cfg := &model.Config{}
	cfg.SetDefaults()
	cfg.ServiceSettings.AllowedUntrustedInternalConnections = model.NewString("10.0.0.0/8 gitlab.lan")
	cfg.ServiceSettings.SiteURL = model.NewString("https://chat.example.test")
	cfg.TeamSettings.EnableOpenServer = nil // unset: set false explicitly
	a.turnOn(cfg)
	if v := cfg.TeamSettings.EnableOpenServer; v == nil || *v {
		t.Errorf("EnableOpenServer = %v, want false set explicitly", v)
	}
	if got := *cfg.ServiceSettings.AllowedUntrustedInternalConnections; got != "10.0.0.0/8 gitlab.lan 127.0.0.1" {
		t.Errorf("allow list = %q", got)
	}
	if off := a.settingsOff(cfg); len(off) != 0 {
		t.Errorf("still off: %v", off)
	}
	if *cfg.ServiceSettings.SiteURL != "https://chat.example.test" {
		t.Error("SiteURL changed")
	}
	// Already allowed by a CIDR or by name: nothing to add.
	for _, list := range []string{"127.0.0.0/8", "localhost,127.0.0.1", "127.0.0.1"} {
		if !hostAllowed(&list, "127.0.0.1") {
			t.Errorf("%q does not allow 127.0.0.1", list)
		}
	}
}

func TestAccountsPasswordAndStateFile(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		pw, err := newPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 27 || seen[pw] || !strings.ContainsAny(pw, "0123456789") || strings.ToLower(pw) == pw || strings.ToUpper(pw) == pw {
			t.Fatalf("weak or repeated password %q", pw)
		}
		seen[pw] = true
	}
	dir := filepath.Join(t.TempDir(), "state")
	a := &Accounts{StatePath: filepath.Join(dir, "accounts.json"), URL: "http://mm", Team: "main", OpsChannel: "ops", BotUsername: "summoner"}
	if _, err := a.Result(); err == nil {
		t.Error("Result without a state file: no error")
	}
	if err := a.save(&accountsState{AdminUsername: "admin", AdminPassword: "pw", BotToken: "tok", SlashToken: "slash"}); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700, a.StatePath: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %04o", path, fi.Mode(), err, mode)
		}
	}
	b := &Accounts{StatePath: a.StatePath, URL: "http://mm", Team: "main", OpsChannel: "ops", BotUsername: "summoner"}
	r, err := b.Result()
	if err != nil || r.BotToken != "tok" || r.SlashToken != "slash" || r.AdminUsername != "admin" || r.Team != "main" {
		t.Errorf("Result = %+v, %v", r, err)
	}
	// A broken file is a failure that does not quote it.
	if err := os.WriteFile(a.StatePath, []byte(`{"admin_password": "hunter2`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = b.Done(context.Background())
	var se *StepError
	if !errors.As(err, &se) || strings.Contains(se.Why, "hunter2") || !strings.Contains(se.Why, "not valid JSON") {
		t.Errorf("Done on a broken state file: %v", err)
	}
}
