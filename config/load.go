package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/template"
	"gopkg.in/yaml.v3"

	"github.com/summoner-bot/summoner/internal/fuzzy"
)

// Problem is one thing wrong with the configuration, with where it is.
type Problem struct {
	File string // the config file, or "" when the value came from elsewhere
	Line int
	Key  string // "chat.url"; for environment values, the variable name
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found; it is the error Load returns for a bad
// configuration (the CLI exits 2 on it).
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Env looks up an environment variable.
type Env func(string) (string, bool)

// Purpose says what the configuration is loaded for, which decides what is
// required: the daemon needs a chat server, the shell does not.
type Purpose int

// The purposes.
const (
	ForShell Purpose = iota // shell and one-shot commands
	ForRun                  // the bot daemon
)

// loader carries where each value came from, for messages.
type loader struct {
	file     string
	env      Env
	lines    map[string]int    // key path -> line in the file
	fromEnv  map[string]string // key path -> variable that set it
	literals map[string]bool   // secret key paths written in clear in the file
	problems Problems
}

// Load reads the configuration: defaults, then the file at path (if path is
// not ""), then SUMMONER_* variables from env, then *_file secrets, then
// validation for the given purpose. A bad configuration returns Problems.
func Load(path string, env Env, purpose Purpose) (Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return Defaults(), Problems{{File: path, Msg: "no such file"}}
			}
			return Defaults(), Problems{{File: path, Msg: fmt.Sprintf("cannot read it: %v", unwrapPathError(err))}}
		}
	}
	return load(path, data, env, purpose)
}

// load is Load on the file's content, data, read from path ("": no file).
// It is apart so the fuzz target can feed it bytes.
func load(path string, data []byte, env Env, purpose Purpose) (Config, error) {
	l := &loader{file: path, env: env, lines: map[string]int{}, fromEnv: map[string]string{}, literals: map[string]bool{}}
	cfg := Defaults()
	if path != "" {
		if err := l.decode(data, &cfg); err != nil {
			return cfg, err
		}
	}
	l.applyEnv(reflect.ValueOf(&cfg).Elem(), nil)
	l.readSecretFiles(reflect.ValueOf(&cfg).Elem(), nil)
	l.checkFileMode(path)
	l.validate(&cfg, purpose)
	if len(l.problems) > 0 {
		return cfg, l.problems
	}
	return cfg, nil
}

func (l *loader) add(key, format string, args ...any) {
	p := Problem{Key: key, Msg: fmt.Sprintf(format, args...)}
	if v, ok := l.fromEnv[key]; ok {
		p.Key = v
	} else if line, ok := l.lines[key]; ok {
		p.File, p.Line = l.file, line
	}
	l.problems = append(l.problems, p)
}

// decode applies the file's content to cfg: every key known, ${VAR}
// interpolated, then the values.
func (l *loader) decode(data []byte, cfg *Config) error {
	path := l.file
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) || len(bytes.TrimSpace(data)) == 0 {
			return nil // an empty file means all defaults
		}
		return Problems{{File: path, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	l.walk(root, reflect.TypeOf(*cfg), nil)
	if len(l.problems) > 0 {
		return l.problems
	}
	if err := root.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				l.problems = append(l.problems, typeProblem(path, e))
			}
			return l.problems
		}
		return Problems{{File: path, Msg: err.Error()}}
	}
	return nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// typeProblem turns yaml's "line 5: cannot unmarshal !!str `x` into int"
// into a Problem with the line split out.
func typeProblem(file, e string) Problem {
	p := Problem{File: file, Msg: e}
	if rest, ok := strings.CutPrefix(e, "line "); ok {
		if n, msg, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(n); err == nil {
				p.Line, p.Msg = line, msg
			}
		}
	}
	return p
}

// walk checks n against type t: every key must be known. It records the
// line of every key and interpolates ${VAR} in scalars in place.
func (l *loader) walk(n *yaml.Node, t reflect.Type, path []string) {
	key := strings.Join(path, ".")
	if len(path) > 0 {
		l.lines[key] = n.Line
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && t != reflect.TypeOf(time.Time{}):
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			l.problems = append(l.problems, Problem{File: l.file, Line: n.Line, Key: key, Msg: "should be a section of keys"})
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				l.problems = append(l.problems, Problem{File: l.file, Line: k.Line, Key: strings.Join(append(path, k.Value), "."),
					Msg: "unknown key" + suggestKey(k.Value, fields)})
				continue
			}
			l.lines[strings.Join(append(path, k.Value), ".")] = k.Line
			l.walk(v, f.Type, append(path, k.Value))
		}
	case t.Kind() == reflect.Map:
		// gateway.hosts.<minion>: the keys are the user's, the values'
		// keys are checked like any section's (found by FuzzLoad: a typo
		// there went by unnoticed).
		if n.Kind != yaml.MappingNode {
			l.interpolate(n, key, t)
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			l.lines[strings.Join(append(path, k), ".")] = n.Content[i].Line
			l.walk(n.Content[i+1], t.Elem(), append(path, k))
		}
	case t.Kind() == reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				l.walk(c, t.Elem(), path)
			}
		} else {
			l.interpolate(n, key, t)
		}
	default:
		l.interpolate(n, key, t)
	}
}

func (l *loader) interpolate(n *yaml.Node, key string, t reflect.Type) {
	if n.Kind != yaml.ScalarNode {
		return
	}
	if t == secretType && n.Value != "" && !strings.Contains(n.Value, "${") {
		l.literals[key] = true
	}
	if !strings.Contains(n.Value, "$") {
		return
	}
	var missing []string
	out, err := template.SubstituteWithOptions(n.Value, func(name string) (string, bool) {
		v, ok := l.env(name)
		if !ok {
			missing = append(missing, name)
		}
		return v, ok
	}, template.WithoutLogging)
	if err != nil {
		// compose-go's messages can quote the value; a secret's must not show.
		msg := "bad ${VAR} reference"
		var req *template.MissingRequiredError
		if errors.As(err, &req) {
			msg = fmt.Sprintf("the variable %s is required but not set", req.Variable)
		}
		l.problems = append(l.problems, Problem{File: l.file, Line: n.Line, Key: key, Msg: msg})
		return
	}
	if out == "" && len(missing) > 0 {
		l.problems = append(l.problems, Problem{File: l.file, Line: n.Line, Key: key,
			Msg: fmt.Sprintf("the variable %s is not set", strings.Join(missing, ", "))})
		return
	}
	n.Value = out
	if n.Tag == "" || n.Tag == "!!null" {
		n.Tag = "" // let the decoder resolve the new value's type
	}
}

var (
	secretType   = reflect.TypeOf(Secret(""))
	durationType = reflect.TypeOf(Duration(0))
)

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = f
	}
	return out
}

func suggestKey(k string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	for name := range fields {
		if d := fuzzy.Distance(k, name); d < bestD || (d == bestD && name < best) {
			best, bestD = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// envName is the variable that overrides a key: SUMMONER_CHAT_URL for
// chat.url; the seed's summoner.domain is SUMMONER_DOMAIN.
func envName(path []string) string {
	if len(path) > 1 && path[0] == "summoner" {
		path = path[1:]
	}
	return "SUMMONER_" + strings.ToUpper(strings.Join(path, "_"))
}

// applyEnv sets every leaf field that has a SUMMONER_* variable.
func (l *loader) applyEnv(v reflect.Value, path []string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := append(append([]string(nil), path...), name)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			l.applyEnv(fv, p)
			continue
		}
		varName := envName(p)
		raw, ok := l.env(varName)
		if !ok {
			continue
		}
		key := strings.Join(p, ".")
		l.fromEnv[key] = varName
		delete(l.literals, key) // the file's clear value is overridden
		if err := setFromString(fv, raw); err != nil {
			l.add(key, "%v", err)
		}
	}
}

func setFromString(v reflect.Value, raw string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("not a duration like 10m or 90s")
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("not a whole number")
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("not true or false")
		}
		v.SetBool(b)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(v.Type()))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// readSecretFiles fills each Secret field X from its sibling X_file, in
// sections, lists of sections and optional sections alike.
func (l *loader) readSecretFiles(v reflect.Value, path []string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			l.readSecretFiles(v.Elem(), path)
		}
		return
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			for i := 0; i < v.Len(); i++ {
				p := append([]string(nil), path...)
				p[len(p)-1] = fmt.Sprintf("%s[%d]", p[len(p)-1], i)
				l.readSecretFiles(v.Index(i), p)
			}
		}
		return
	case reflect.Struct:
	default:
		return
	}
	t := v.Type()
	fields := yamlFields(t)
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		p := append(append([]string(nil), path...), name)
		fv := v.Field(i)
		if k := fv.Kind(); k == reflect.Struct || k == reflect.Pointer || k == reflect.Slice {
			l.readSecretFiles(fv, p)
			continue
		}
		if fv.Type() != secretType {
			continue
		}
		ff, ok := fields[name+"_file"]
		if !ok {
			continue
		}
		fileKey := strings.Join(append(path, name+"_file"), ".")
		file := v.FieldByIndex(ff.Index).String()
		if file == "" {
			continue
		}
		key := strings.Join(p, ".")
		if fv.String() != "" {
			l.add(fileKey, "set %s or %s, not both", key, fileKey)
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			l.add(fileKey, "cannot read %s: %v", file, unwrapPathError(err))
			continue
		}
		if st, err := os.Stat(file); err == nil && st.Mode().Perm()&0o044 != 0 {
			l.add(fileKey, "%s is readable by other users; run: chmod 600 %s", file, file)
			continue
		}
		fv.SetString(strings.TrimRight(string(data), "\r\n"))
	}
}

// checkFileMode refuses a config file that holds a secret in clear text and
// that other users can read.
func (l *loader) checkFileMode(path string) {
	if path == "" || len(l.literals) == 0 {
		return
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o044 == 0 {
		return
	}
	var keys []string
	for k := range l.literals {
		keys = append(keys, k)
	}
	l.problems = append(l.problems, Problem{File: path,
		Msg: fmt.Sprintf("holds %s and is readable by other users; run: chmod 600 %s", strings.Join(keys, ", "), shellQuote(path))})
}

func shellQuote(s string) string {
	if strings.ContainsAny(s, " \t'\"$`\\") {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}

// UnmarshalYAML reads "10m"-style durations.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration like 10m or 90s", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// DefaultPath is where the daemon looks when no --config is given and no
// file is needed: it is used only if it exists.
func DefaultPath() string {
	return filepath.Join("/etc", "summoner", "config.yml")
}
