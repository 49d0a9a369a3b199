package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"maps"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
)

// Kinds of backups.
const (
	KindDump = "dump" // a database dump
	KindCold = "cold" // a copy of a stopped minion's data folders
)

const (
	manifestFile = "manifest.json"
	idTime       = "20060102T150405Z"
)

// ErrEmpty is a payload with no bytes: never a backup.
var ErrEmpty = errors.New("the backup is empty (0 bytes); nothing was stored")

// Manifest describes one backup; it is written last, so a backup without
// one is incomplete.
type Manifest struct {
	Format          int               `json:"format"`
	ID              string            `json:"id"` // <minion>/<timestamp>-<kind>
	Minion          string            `json:"minion"`
	Kind            string            `json:"kind"`
	Created         time.Time         `json:"created"`
	DBKind          string            `json:"db_kind,omitempty"`
	Images          map[string]string `json:"images,omitempty"`
	SummonerVersion string            `json:"summoner_version"`
	Compression     string            `json:"compression"`
	Encryption      []string          `json:"encryption_recipients,omitempty"`
	Payload         Sum               `json:"payload"` // the plain bytes
	Stored          Sum               `json:"stored"`  // the bytes in the data file
	DataFile        string            `json:"data_file"`
	// Counts are what the backup held when it was taken: rows per table
	// (documents per collection) for a dump; "files" and "bytes" for a
	// cold backup. A test restore compares them; nil in older backups.
	Counts map[string]int64 `json:"counts,omitempty"`
	// EntriesSHA256 is, for a cold backup, a SHA-256 over its archive's
	// entries (headers and contents, in order), taken as it streamed past;
	// a test restore recomputes it without unpacking. "" in older backups.
	EntriesSHA256 string `json:"entries_sha256,omitempty"`
}

// Sum is a size and a SHA-256.
type Sum struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Meta is what the caller knows about a backup it stores.
type Meta struct {
	Minion, Kind, DBKind string
	Images               map[string]string
	Counts               map[string]int64 // see Manifest.Counts; nil if unknown
	// Tally, when set, is called once the payload has been read to its
	// end, before the manifest is written: what only the stream itself
	// can tell (a cold backup's files and bytes). Its counts are added to
	// Counts.
	Tally func() Tally
}

// Tally is what a payload held, known once it has streamed past.
type Tally struct {
	Counts        map[string]int64
	EntriesSHA256 string
}

// Options configure a Repository.
type Options struct {
	Backends []Backend
	// Names are the destinations' names from the config, in the order of
	// Backends. Replies show them to everyone, where Backend.Name() would
	// show a host, a user or a path. An empty or missing one reads
	// "destination N".
	Names []string
	// Recipients are age public keys ("age1…"); with none, backups are not
	// encrypted. Identities decrypt them for verify and restore.
	Recipients []string
	Identities []age.Identity
	Retention  Retention
	Version    string // Summoner's, recorded in manifests
	// VerifyCopies reads every copy back after writing it and checks its
	// hash; without it a copy is checked by its listed size.
	VerifyCopies bool
	Logger       *slog.Logger
	Now          func() time.Time
	// VerifyLog is a file where verify results are kept ("" keeps none).
	VerifyLog string
}

// Repository stores backups on its backends.
type Repository struct {
	o          Options
	names      []string // public, one per backend
	recipients []age.Recipient
	log        *slog.Logger
	vlog       *verifyLog
}

// NewRepository checks the options and makes a repository.
func NewRepository(o Options) (*Repository, error) {
	if len(o.Backends) == 0 {
		return nil, errors.New("no backup destination")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.Names) > len(o.Backends) {
		return nil, fmt.Errorf("%d destination names for %d destinations", len(o.Names), len(o.Backends))
	}
	r := &Repository{o: o, log: o.Logger, vlog: &verifyLog{path: o.VerifyLog}}
	for i := range o.Backends {
		name := fmt.Sprintf("destination %d", i+1)
		if i < len(o.Names) && strings.TrimSpace(o.Names[i]) != "" {
			name = o.Names[i]
		}
		r.names = append(r.names, name)
	}
	for _, s := range o.Recipients {
		rc, err := age.ParseX25519Recipient(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("encryption recipient %q: %w", s, err)
		}
		r.recipients = append(r.recipients, rc)
	}
	return r, nil
}

// Backends are the repository's destinations.
func (r *Repository) Backends() []Backend { return r.o.Backends }

// Location names a destination twice: for everyone and for operators.
type Location struct {
	Destination string // the name from the config: safe to show anyone
	Backend     string // Backend.Name(): may show a host, a user, a path
}

// at is where backend i is.
func (r *Repository) at(i int) Location {
	return Location{Destination: r.names[i], Backend: r.o.Backends[i].Name()}
}

// failure wraps a backend's error with the destination's public name.
func (r *Repository) failure(i int, op Op, err error) error {
	return &DestinationError{Destination: r.names[i], Op: op, Err: err}
}

// Copy is the outcome of storing a backup on one backend. Err, when set,
// is a *DestinationError.
type Copy struct {
	Location
	Err error
}

// StoreResult is what Store did on each backend.
type StoreResult struct {
	Manifest *Manifest
	Copies   []Copy
}

// Failed lists the backends that did not get a good copy.
func (s *StoreResult) Failed() []Copy {
	var out []Copy
	for _, c := range s.Copies {
		if c.Err != nil {
			out = append(out, c)
		}
	}
	return out
}

var minionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Store reads payload once, hashing, compressing (zstd) and encrypting (age)
// it while it streams to every backend at once, with bounded memory. Each
// copy is verified before its manifest is written. It fails if no backend
// got a good copy; backends that failed are listed in the result.
func (r *Repository) Store(ctx context.Context, meta Meta, payload io.Reader) (*StoreResult, error) {
	if !minionRE.MatchString(meta.Minion) {
		return nil, fmt.Errorf("storing a backup: bad minion name %q", meta.Minion)
	}
	if meta.Kind != KindDump && meta.Kind != KindCold {
		return nil, fmt.Errorf("storing a backup: unknown kind %q", meta.Kind)
	}
	created := r.o.Now().UTC().Truncate(time.Second)
	id, err := r.newID(ctx, meta, created)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Format: 1, ID: id, Minion: meta.Minion, Kind: meta.Kind, Created: created, DBKind: meta.DBKind,
		Images: meta.Images, SummonerVersion: r.o.Version, Compression: "zstd", DataFile: "data.zst",
		Counts: maps.Clone(meta.Counts),
	}
	if len(r.recipients) > 0 {
		m.Encryption = r.o.Recipients
		m.DataFile = "data.zst.age"
	}
	dataName := path.Join(id, m.DataFile)

	fan := newFanOut(ctx, r.o.Backends, dataName)
	plain, stored := newCounter(), newCounter()
	err = encode(io.MultiWriter(fan, stored), io.TeeReader(payload, plain), r.recipients)
	if err == nil && plain.n == 0 {
		err = ErrEmpty
	}
	if err != nil {
		fan.abort(err)
		return nil, fmt.Errorf("storing a backup of %s: %w", meta.Minion, err)
	}
	results := fan.finish()
	m.Payload, m.Stored = plain.sum(), stored.sum()
	if meta.Tally != nil {
		t := meta.Tally()
		if len(t.Counts) > 0 && m.Counts == nil {
			m.Counts = map[string]int64{}
		}
		for k, v := range t.Counts {
			m.Counts[k] = v
		}
		m.EntriesSHA256 = t.EntriesSHA256
	}

	res := &StoreResult{Manifest: m}
	manifest, _ := json.MarshalIndent(m, "", "  ")
	var wg sync.WaitGroup
	res.Copies = make([]Copy, len(r.o.Backends))
	for i, b := range r.o.Backends {
		res.Copies[i] = Copy{Location: r.at(i), Err: results[i]}
		if results[i] != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.checkCopy(ctx, b, dataName, m.Stored)
			if err == nil {
				err = b.Save(ctx, path.Join(id, manifestFile), bytes.NewReader(manifest))
			}
			if err != nil {
				_ = b.Remove(context.WithoutCancel(ctx), dataName) // no manifest: it would be incomplete anyway
			}
			res.Copies[i].Err = err
		}()
	}
	wg.Wait()
	good := 0
	for i, c := range res.Copies {
		if c.Err == nil {
			good++
		} else {
			r.log.Error("a backup copy failed", "backup", id, "destination", c.Destination, "backend", c.Backend, "err", c.Err)
			res.Copies[i].Err = r.failure(i, OpSave, c.Err)
		}
	}
	if good == 0 {
		return res, fmt.Errorf("storing backup %s: no destination got a good copy: %w", id, errors.Join(errsOf(res.Copies)...))
	}
	// Retention runs only now, after a good backup, so a failing backup
	// job can never prune its way to nothing.
	if !r.o.Retention.IsZero() {
		if removed, err := r.Prune(ctx, meta.Minion, false); err != nil {
			r.log.Error("pruning after a backup", "minion", meta.Minion, "err", err)
		} else if len(removed) > 0 {
			r.log.Info("pruned old backups", "minion", meta.Minion, "removed", len(removed))
		}
	}
	return res, nil
}

func errsOf(cs []Copy) []error {
	var out []error
	for _, c := range cs {
		if c.Err != nil {
			out = append(out, c.Err) // a *DestinationError: it names the destination
		}
	}
	return out
}

// newID names a backup by minion, time and kind; two in the same second
// get a suffix.
func (r *Repository) newID(ctx context.Context, meta Meta, t time.Time) (string, error) {
	base := fmt.Sprintf("%s/%s-%s", meta.Minion, t.Format(idTime), meta.Kind)
	for n := 1; n < 100; n++ {
		id := base
		if n > 1 {
			id = fmt.Sprintf("%s-%d", base, n)
		}
		taken := false
		for _, b := range r.o.Backends {
			if files, err := b.List(ctx, id+"/"); err == nil && len(files) > 0 {
				taken = true
			}
		}
		if !taken {
			return id, nil
		}
	}
	return "", fmt.Errorf("naming a backup of %s: too many in one second", meta.Minion)
}

// checkCopy makes sure a stored data file is whole: by size, and by its
// SHA-256 when VerifyCopies is on.
func (r *Repository) checkCopy(ctx context.Context, b Backend, name string, want Sum) error {
	files, err := b.List(ctx, name)
	if err != nil {
		return fmt.Errorf("checking the copy: %w", err)
	}
	if len(files) != 1 || files[0].Name != name || files[0].Size != want.Size {
		return fmt.Errorf("checking the copy: %s should have %d bytes, the destination lists %v", name, want.Size, files)
	}
	if !r.o.VerifyCopies {
		return nil
	}
	rc, err := b.Open(ctx, name)
	if err != nil {
		return fmt.Errorf("reading the copy back: %w", err)
	}
	defer rc.Close()
	c := newCounter()
	if _, err := io.Copy(c, rc); err != nil {
		return fmt.Errorf("reading the copy back: %w", err)
	}
	if got := c.sum(); got != want {
		return fmt.Errorf("the copy differs from what was sent (%d bytes, sha256 %s; sent %d, %s)", got.Size, got.SHA256, want.Size, want.SHA256)
	}
	return nil
}

// encode compresses src into w, encrypting to recipients when there are any.
func encode(w io.Writer, src io.Reader, recipients []age.Recipient) error {
	out := nopWriteCloser{w}
	var enc io.WriteCloser = out
	if len(recipients) > 0 {
		var err error
		if enc, err = age.Encrypt(w, recipients...); err != nil {
			return fmt.Errorf("starting encryption: %w", err)
		}
	}
	if err := compressFrames(enc, src); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encrypting: %w", err)
	}
	return nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// counter hashes and counts what goes through it.
type counter struct {
	h hash.Hash
	n int64
}

func newCounter() *counter { return &counter{h: sha256.New()} }

func (c *counter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *counter) sum() Sum { return Sum{Size: c.n, SHA256: hex.EncodeToString(c.h.Sum(nil))} }

// fanOut writes one stream to several backends at once. A backend that
// fails drops out; the others go on. It fails only when all have.
type fanOut struct {
	dests []*dest
	wg    sync.WaitGroup
}

type dest struct {
	pw     *io.PipeWriter
	err    error // set when writing to it failed
	result error // what Save returned
}

func newFanOut(ctx context.Context, backends []Backend, name string) *fanOut {
	f := &fanOut{}
	for _, b := range backends {
		pr, pw := io.Pipe()
		d := &dest{pw: pw}
		f.dests = append(f.dests, d)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			err := b.Save(ctx, name, pr)
			if err == nil {
				err = errSaveReturned // a later Write fails instead of blocking
			}
			pr.CloseWithError(err)
			if err != errSaveReturned {
				d.result = err
			}
		}()
	}
	return f
}

var errSaveReturned = errors.New("the destination stopped reading")

func (f *fanOut) Write(p []byte) (int, error) {
	alive := 0
	for _, d := range f.dests {
		if d.err != nil {
			continue
		}
		if _, err := d.pw.Write(p); err != nil {
			d.err = err
			continue
		}
		alive++
	}
	if alive == 0 {
		return 0, fmt.Errorf("every destination failed: %w", f.firstErr())
	}
	return len(p), nil
}

func (f *fanOut) firstErr() error {
	for _, d := range f.dests {
		if d.err != nil {
			return d.err
		}
	}
	return nil
}

// finish ends the stream and returns each backend's outcome.
func (f *fanOut) finish() []error {
	for _, d := range f.dests {
		d.pw.Close()
	}
	f.wg.Wait()
	out := make([]error, len(f.dests))
	for i, d := range f.dests {
		out[i] = d.result
		if out[i] == nil && d.err != nil { // it stopped reading before the end
			out[i] = d.err
		}
	}
	return out
}

// abort fails every upload, so no backend keeps anything.
func (f *fanOut) abort(err error) {
	for _, d := range f.dests {
		d.pw.CloseWithError(err)
	}
	f.wg.Wait()
}

// Backup is a complete backup as lists show it.
type Backup struct {
	Manifest *Manifest
	Copies   []Location // destinations holding a complete copy
}

// List returns the complete backups of a minion ("" for all), newest first.
// Backups without a manifest are incomplete and not listed. Each
// destination that cannot be listed adds a *DestinationError to errs.
func (r *Repository) List(ctx context.Context, minion string) ([]Backup, []error) {
	byID := map[string]*Backup{}
	var errs []error
	for i, b := range r.o.Backends {
		ms, err := r.manifests(ctx, b, minion)
		if err != nil {
			r.log.Warn("listing backups", "destination", r.names[i], "backend", b.Name(), "err", err)
			errs = append(errs, r.failure(i, OpList, err))
			continue
		}
		for _, m := range ms {
			bk := byID[m.ID]
			if bk == nil {
				bk = &Backup{Manifest: m}
				byID[m.ID] = bk
			}
			bk.Copies = append(bk.Copies, r.at(i))
		}
	}
	out := make([]Backup, 0, len(byID))
	for _, b := range byID {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Manifest.Created.Equal(out[j].Manifest.Created) {
			return out[i].Manifest.Created.After(out[j].Manifest.Created)
		}
		return out[i].Manifest.ID > out[j].Manifest.ID
	})
	return out, errs
}

func prefixFor(minion string) string {
	if minion == "" {
		return ""
	}
	return minion + "/"
}

// manifests reads every manifest on a backend.
func (r *Repository) manifests(ctx context.Context, b Backend, minion string) ([]*Manifest, error) {
	files, err := b.List(ctx, prefixFor(minion))
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, f := range files {
		if path.Base(f.Name) != manifestFile {
			continue
		}
		m, err := readManifest(ctx, b, f.Name)
		if err != nil {
			r.log.Warn("skipping an unreadable manifest", "destination", b.Name(), "file", f.Name, "err", err)
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

func readManifest(ctx context.Context, b Backend, name string) (*Manifest, error) {
	rc, err := b.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var m Manifest
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if m.ID+"/"+manifestFile != name {
		return nil, fmt.Errorf("%s names backup %q", name, m.ID)
	}
	return &m, nil
}
