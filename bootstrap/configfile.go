package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// ConfigFile writes keys into Summoner's config file (mode 0600: it holds
// the bot's token), keeping every other key and comment the file has, so
// a second run, or a run after the admin edited the file, changes only
// what bootstrap owns.
type ConfigFile struct {
	StepName, StepTitle string
	Path                string
	// Values are dotted keys ("chat.token") and their wanted values:
	// strings, bools, numbers, lists and maps. A key whose value is
	// KeepIfSet is written only when the file has none (a default the
	// admin may change).
	Values func(ctx context.Context) (map[string]any, error)
	// Secret keys are not shown in progress lines.
	Secret map[string]bool
	// DoneText, when set, is what "already done" says instead of the
	// count of settings.
	DoneText string
}

// keepIfSet marks a default: written only where the file has no value.
type keepIfSet struct{ v any }

// KeepIfSet wraps a default value: bootstrap writes it only when the file
// has none, and leaves the admin's own value alone.
func KeepIfSet(v any) any { return keepIfSet{v} }

func (c *ConfigFile) Name() string  { return c.StepName }
func (c *ConfigFile) Title() string { return c.StepTitle }

func (c *ConfigFile) Done(ctx context.Context) (bool, string, error) {
	want, err := c.Values(ctx)
	if err != nil {
		return false, "", nil // not known yet (an earlier step is not done)
	}
	doc, mode, err := c.load()
	if err != nil || doc == nil {
		return false, "", err
	}
	if mode.Perm()&0o077 != 0 {
		return false, "", nil
	}
	if stale := c.stale(doc, want); len(stale) > 0 {
		return false, "", nil
	}
	if c.DoneText != "" {
		return true, c.DoneText, nil
	}
	return true, fmt.Sprintf("%s has the %d settings bootstrap writes", c.Path, len(want)), nil
}

func (c *ConfigFile) Plan(ctx context.Context) string {
	want, err := c.Values(ctx)
	if err != nil {
		return "would write " + c.Path + " once the steps before it are done"
	}
	doc, _, _ := c.load()
	return "would set " + strings.Join(c.stale(doc, want), ", ") + " in " + c.Path
}

func (c *ConfigFile) Apply(ctx context.Context, say func(string, ...any)) error {
	want, err := c.Values(ctx)
	if err != nil {
		return err
	}
	doc, _, err := c.load()
	if err != nil {
		return err
	}
	if doc == nil {
		doc = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	stale := c.stale(doc, want)
	for _, key := range stale {
		v := want[key]
		if k, ok := v.(keepIfSet); ok {
			v = k.v
		}
		var n yaml.Node
		if err := n.Encode(v); err != nil {
			return fmt.Errorf("encoding %s: %w", key, err)
		}
		set(doc.Content[0], strings.Split(key, "."), &n)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encoding %s: %w", c.Path, err)
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return Failf("run bootstrap as root", "cannot create %s: %v", filepath.Dir(c.Path), err)
	}
	if err := atomicfile.Write(c.Path, buf.Bytes(), 0o600); err != nil {
		return Failf("run bootstrap as root", "cannot write %s: %v", c.Path, err)
	}
	shown := make([]string, 0, len(stale))
	for _, k := range stale {
		if c.Secret[k] {
			k += " (secret, not shown)"
		}
		shown = append(shown, k)
	}
	if len(shown) == 0 {
		say("%s is now mode 0600", c.Path)
	} else {
		say("wrote %s (mode 0600): %s", c.Path, strings.Join(shown, ", "))
	}
	if c.DoneText != "" {
		say("%s", c.DoneText)
	}
	return nil
}

// load reads the file; nil when it does not exist.
func (c *ConfigFile) load() (*yaml.Node, fs.FileMode, error) {
	data, err := os.ReadFile(c.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, Failf("run bootstrap as root", "cannot read %s: %v", c.Path, err)
	}
	st, err := os.Stat(c.Path)
	if err != nil {
		return nil, 0, Failf("run bootstrap as root", "cannot read %s: %v", c.Path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, 0, Failf("fix the file (or move it away to start afresh) and run bootstrap again", "%s is not valid YAML: %v", c.Path, err)
	}
	if doc.Kind == 0 { // empty file
		return nil, st.Mode(), nil
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, 0, Failf("fix the file and run bootstrap again", "%s is not a mapping of settings", c.Path)
	}
	return &doc, st.Mode(), nil
}

// stale lists the keys whose value in doc is not the wanted one, sorted.
func (c *ConfigFile) stale(doc *yaml.Node, want map[string]any) []string {
	var out []string
	for key, v := range want {
		var have *yaml.Node
		if doc != nil {
			have = get(doc.Content[0], strings.Split(key, "."))
		}
		if _, ok := v.(keepIfSet); ok {
			if have == nil || (have.Kind == yaml.ScalarNode && have.Value == "") {
				out = append(out, key)
			}
			continue
		}
		if have == nil || !sameValue(have, v) {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out
}

func sameValue(n *yaml.Node, v any) bool {
	var want yaml.Node
	if err := want.Encode(v); err != nil {
		return false
	}
	var a, b any
	if n.Decode(&a) != nil || want.Decode(&b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

func get(m *yaml.Node, path []string) *yaml.Node {
	for _, k := range path {
		if m == nil || m.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == k {
				next = m.Content[i+1]
			}
		}
		m = next
	}
	return m
}

// set puts v at path, making the mappings on the way.
func set(m *yaml.Node, path []string, v *yaml.Node) {
	for i, k := range path {
		var next *yaml.Node
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == k {
				next = m.Content[j+1]
				if i == len(path)-1 {
					// Keep the comment that was on the old value.
					v.LineComment, v.HeadComment = next.LineComment, next.HeadComment
					m.Content[j+1] = v
					return
				}
			}
		}
		if i == len(path)-1 {
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, v)
			return
		}
		if next == nil || next.Kind != yaml.MappingNode {
			fresh := &yaml.Node{Kind: yaml.MappingNode}
			if next == nil {
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, fresh)
			} else {
				*next = *fresh
				fresh = next
			}
			next = fresh
		}
		m = next
	}
}

// KeepConfig sets the config file aside for `bootstrap --uninstall`: it
// renames it to <path>.<date>.bak (config.yml.2026-12-06.bak) with mode
// 0600, so the destinations, recipes and key paths it names are not lost.
// An earlier backup of the same day is never overwritten: the next free
// name gets a -2, -3… suffix. It returns the new name, "" when there was
// no file.
func KeepConfig(path string, now time.Time) (string, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("looking at %s: %w", path, err)
	}
	// 0600 before the rename: the backup never exists with a wider mode.
	if err := os.Chmod(path, 0o600); err != nil {
		return "", fmt.Errorf("setting %s to mode 0600: %w", path, err)
	}
	date := now.Format("2006-01-02")
	for n := 1; n < 1000; n++ {
		bak := fmt.Sprintf("%s.%s.bak", path, date)
		if n > 1 {
			bak = fmt.Sprintf("%s.%s-%d.bak", path, date, n)
		}
		// A hard link fails if the name is taken, where a rename would
		// replace it.
		if err := os.Link(path, bak); errors.Is(err, fs.ErrExist) {
			continue
		} else if err != nil {
			return "", fmt.Errorf("keeping %s as %s: %w", path, bak, err)
		}
		if err := os.Remove(path); err != nil {
			return "", fmt.Errorf("removing %s once kept as %s: %w", path, bak, err)
		}
		return bak, nil
	}
	return "", fmt.Errorf("keeping %s: 999 backups of it made on %s already", path, date)
}
