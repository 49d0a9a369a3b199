package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigFileKeepsWhatIsThere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	orig := "# my settings\nchat:\n  url: http://old:8065 # the old one\n  prefix: \"!\"\nlog:\n  level: debug\nbackups:\n  destinations:\n    - {name: mine, local: {path: /mnt/b}}\n"
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &ConfigFile{StepName: "config", Path: path, Secret: map[string]bool{"chat.token": true},
		Values: func(context.Context) (map[string]any, error) {
			return map[string]any{
				"chat.url": "http://127.0.0.1:8065", "chat.token": "s3cret-token", "gateway.enabled": true,
				"gateway.hosts.mattermost.subdomain": "chat",
				"backups.destinations":               KeepIfSet([]map[string]any{{"name": "local", "local": map[string]any{"path": "/var/backups/summoner"}}}),
			}, nil
		}}
	ctx := context.Background()
	if done, _, err := c.Done(ctx); done || err != nil {
		t.Fatalf("Done before = %v, %v", done, err)
	}
	var said []string
	if err := c.Apply(ctx, func(f string, a ...any) { said = append(said, f) }); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	got := string(data)
	for _, want := range []string{"url: http://127.0.0.1:8065", "prefix: \"!\"", "level: debug", "token: s3cret-token", "enabled: true", "subdomain: chat", "name: mine", "# my settings"} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "/var/backups/summoner") {
		t.Errorf("a default replaced the admin's own backups:\n%s", got)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if done, _, err := c.Done(ctx); !done || err != nil {
		t.Fatalf("Done after = %v, %v", done, err)
	}
	for _, s := range said {
		if strings.Contains(s, "s3cret") {
			t.Errorf("progress shows the secret: %s", s)
		}
	}
}

func TestConfigFileRefusesBrokenYAML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte("chat: [unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &ConfigFile{StepName: "config", Path: path, Values: func(context.Context) (map[string]any, error) {
		return map[string]any{"chat.url": "x"}, nil
	}}
	err := c.Apply(context.Background(), func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "not valid YAML") {
		t.Fatalf("err = %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "chat: [unclosed\n" {
		t.Error("a broken file was overwritten")
	}
}

// Uninstall keeps the config: same bytes, mode 0600, a dated name, and an
// earlier backup of the same day is never overwritten.
func TestKeepConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	day := time.Date(2026, 12, 6, 9, 45, 0, 0, time.UTC)
	for i, want := range []string{"config.yml.2026-12-06.bak", "config.yml.2026-12-06-2.bak"} {
		content := []byte(fmt.Sprintf("# run %d\nchat:\n  token: s3cret\nbackups:\n  destinations: [{name: nas}]\n", i))
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		bak, err := KeepConfig(path, day)
		if err != nil || bak != filepath.Join(dir, want) {
			t.Fatalf("KeepConfig = %q, %v; want %s", bak, err, want)
		}
		got, err := os.ReadFile(bak)
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("%s holds %q, %v; want the config's bytes", want, got, err)
		}
		if fi, err := os.Stat(bak); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", want, fi.Mode(), err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the config file is still there: %v", err)
		}
	}
	if first, _ := os.ReadFile(filepath.Join(dir, "config.yml.2026-12-06.bak")); !strings.HasPrefix(string(first), "# run 0") {
		t.Errorf("the first backup was overwritten: %q", first)
	}
	if bak, err := KeepConfig(path, day); bak != "" || err != nil {
		t.Errorf("without a config file: %q, %v", bak, err)
	}
}
