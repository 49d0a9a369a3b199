package config

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Two seeded secrets of the same length and kind of characters, so every
// check on a secret's shape (length, spaces, URL characters) decides the
// same for both: a refusal may then differ between them only by echoing
// the value.
const (
	seededA = "sEEdedSecretAAAA7x9Q2wZk"
	seededB = "sEEdedSecretBBBB7x9Q2wZk"
)

// fuzzEnv is the environment: a few fixed variables, then the fuzzed
// lines (NAME=value each), then extra.
func fuzzEnv(lines string, extra map[string]string) Env {
	env := map[string]string{"SUMMONER_BOT_TOKEN": token, "HOST": "chat.example.com", "EMPTY": ""}
	for _, l := range strings.Split(lines, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	for k, v := range extra {
		env[k] = v
	}
	return envOf(env)
}

// FuzzLoad: no file and no SUMMONER_* variables make the strict load and
// Validate panic; each gives a config or Problems, the same ones every
// time; a config it accepts has no key the type lacks; and no refusal
// shows the value of a secret, written in the file or in the environment.
// Seeds: config.example.yml (also under testdata/fuzz/FuzzLoad) and the
// kinds of mistakes people make by hand.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../config.example.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example, "", true)
	f.Add(example, "SUMMONER_CHAT_WORKERS=eight\nSUMMONER_CHAT_MAX_COMMAND_AGE=10\nSUMMONER_LOG_LEVEL=loud", true)
	f.Add([]byte{}, "SUMMONER_PERMISSIONS_ADMINS=alice, Bob!\nSUMMONER_GATEWAY_ENABLED=yes\nSUMMONER_CHAT_URL=chat.example.com", true)
	for _, s := range []string{
		"",
		"chat:\n  url: https://chat.example.com\n  token: " + token + "\n",
		"chat:\n  token: short\n  slash_token: x y\n",
		"chat:\n  tokn: x\n",
		"chat: [a, b]\n",
		"chat:\n  workers: ${W:?workers needed}\n",
		"chat:\n  max_command_age: 10 minutes\n",
		"summoner:\n  domain: ${HOST}\n  applications: wekan\n",
		"notifications:\n  sources:\n    - {name: ci, kind: slack, secret: a/b?c#d%e-0123456789}\n    - {name: ci, kind: gitlab, secret: tooshort}\n",
		"notifications:\n  recipes:\n    - name: r\n      source: nowhere\n      actions: [{post: {channel: dev, template: '{{.Nope'}}]\n",
		"backups:\n  destinations:\n    - name: d\n      dropbox: {app_key: k, app_secret: s, refresh_token: t}\n      local: {path: rel}\n",
		"gateway:\n  enabled: true\n  hosts:\n    wekan: {subdomain: Boards!, aliases: [x]}\n    ghost: {subdomain: b}\n",
		"a: &x {b: 1}\nc: *x\n<<: *x\n",
		"chat:\n  token: !!binary c2VjcmV0\n",
		"maintenance:\n  dump: 61 * * * *\n  timezone: Mars/Olympus\n",
	} {
		f.Add([]byte(s), "", false)
	}
	f.Fuzz(func(t *testing.T, data []byte, envLines string, run bool) {
		purpose := ForShell
		if run {
			purpose = ForRun
		}
		env := fuzzEnv(envLines, nil)
		cfg, err := load("fuzz.yml", data, env, purpose)
		checkRefusal(t, err)
		_, again := load("fuzz.yml", data, env, purpose)
		if errText(err) != errText(again) {
			t.Fatalf("a second load differs:\n%s\n---\n%s", errText(err), errText(again))
		}
		if err == nil {
			strictAgrees(t, data, cfg)
		}

		// The same file and environment with the secrets set to A, then B.
		withA, inFile := seedSecrets(data, seededA)
		withB, _ := seedSecrets(data, seededB)
		if !inFile {
			withA, withB = data, data
		}
		// ${SUMMONER_CHAT_TOKEN} left in the file is in a key that is no
		// secret (seedSecrets replaced the others): the value shows there
		// by the author's choice.
		inEnv := !bytes.Contains(withA, []byte("SUMMONER_CHAT_"))
		if !inFile && !inEnv {
			return
		}
		envA, envB := env, env
		if inEnv {
			envA = fuzzEnv(envLines, map[string]string{"SUMMONER_CHAT_TOKEN": seededA, "SUMMONER_CHAT_SLASH_TOKEN": seededA})
			envB = fuzzEnv(envLines, map[string]string{"SUMMONER_CHAT_TOKEN": seededB, "SUMMONER_CHAT_SLASH_TOKEN": seededB})
		}
		_, errA := load("fuzz.yml", withA, envA, purpose)
		_, errB := load("fuzz.yml", withB, envB, purpose)
		if errText(errA) != errText(errB) {
			t.Fatalf("a refusal depends on a secret's value:\n%s\n---\n%s", errText(errA), errText(errB))
		}
		if !bytes.Contains(bytes.ToLower(data), []byte("seeded")) && !strings.Contains(strings.ToLower(envLines), "seeded") && strings.Contains(errText(errA), seededA) {
			t.Fatalf("a refusal shows a secret: %s", errText(errA))
		}
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkRefusal: an error is Problems, each saying something.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ps Problems
	if !errors.As(err, &ps) || len(ps) == 0 {
		t.Fatalf("error %T %v is not Problems", err, err)
	}
	for _, p := range ps {
		if strings.TrimSpace(p.Msg) == "" {
			t.Fatalf("a problem without a message: %+v", p)
		}
	}
}

// strictAgrees: what Load accepts, yaml's own strict decoder accepts too,
// so no key the Config type lacks (a typo) went by unnoticed, at any depth.
func strictAgrees(t *testing.T, data []byte, cfg Config) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	err := dec.Decode(&c)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return // other errors (a value, not a key) were the loader's to judge
	}
	for _, e := range te.Errors {
		if strings.Contains(e, "not found in type") {
			t.Fatalf("accepted a config with an unknown key: %s", e)
		}
	}
}

// seedSecrets writes secret as the value of every Secret key the document
// has, as its author would. It reports false when data is no YAML mapping
// or has no Secret key.
func seedSecrets(data []byte, secret string) ([]byte, bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, false
	}
	if !setSecrets(doc.Content[0], reflect.TypeOf(Config{}), secret) {
		return nil, false
	}
	out, err := marshalNode(&doc)
	return out, err == nil
}

// marshalNode encodes a parsed document; yaml.v3's encoder panics on a few
// trees its parser builds, which is no input Summoner ever encodes.
func marshalNode(doc *yaml.Node) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("yaml cannot encode it")
		}
	}()
	return yaml.Marshal(doc)
}

func setSecrets(n *yaml.Node, t reflect.Type, secret string) (found bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == secretType:
		if n.Kind == yaml.ScalarNode {
			n.Value, n.Tag, n.Style = secret, "!!str", yaml.DoubleQuotedStyle
			return true
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if fd, ok := fields[n.Content[i].Value]; ok && setSecrets(n.Content[i+1], fd.Type, secret) {
				found = true
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, c := range n.Content {
			if setSecrets(c, t.Elem(), secret) {
				found = true
			}
		}
	}
	return found
}
