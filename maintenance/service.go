package maintenance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

// Engine is the part of minions.Engine a dump and a restore use.
type Engine interface {
	Database(ctx context.Context, minion string) (*minions.RunningDatabase, error)
	Lock(minion, what string) (release func(), err error)
	StopApp(ctx context.Context, minion string, progress minions.Progress) error
	StartApp(ctx context.Context, minion string, progress minions.Progress) error
}

var _ Engine = (*minions.Engine)(nil)

// Repository is the part of storage.Repository a dump and a restore use.
type Repository interface {
	Store(ctx context.Context, meta storage.Meta, payload io.Reader) (*storage.StoreResult, error)
	Verify(ctx context.Context, id string) (*storage.Manifest, []storage.CopyCheck, error)
	Open(ctx context.Context, id string) (io.ReadCloser, *storage.Manifest, error)
}

var _ Repository = (*storage.Repository)(nil)

// Progress receives one line describing the current step.
type Progress = minions.Progress

// Options configure a Service.
type Options struct {
	Docker Docker
	Engine Engine
	Repo   Repository
	Logger *slog.Logger
	// RecoverTimeout bounds putting the safety dump back after a failed
	// restore, which runs even when the command's own deadline has passed.
	RecoverTimeout time.Duration
	// Dumpers replaces the dumper of a kind (tests); others come from DumperFor.
	Dumpers map[string]Dumper
	// Space tells how much room a test restore's throwaway database has;
	// nil asks the kernel (statfs).
	Space DiskSpace
}

// Service dumps minions' databases into the repository and restores them.
type Service struct {
	o   Options
	log *slog.Logger
}

// New makes a Service.
func New(o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RecoverTimeout <= 0 {
		o.RecoverTimeout = 30 * time.Minute
	}
	if o.Space == nil {
		o.Space = statfsSpace{}
	}
	return &Service{o: o, log: o.Logger}
}

func (s *Service) dumper(kind string) (Dumper, error) {
	if d, ok := s.o.Dumpers[kind]; ok {
		return d, nil
	}
	return DumperFor(s.o.Docker, kind)
}

// DumpResult is a stored dump.
type DumpResult struct {
	*storage.StoreResult
	Took time.Duration
}

// Dump dumps a minion's database into the repository, holding the
// minion's lock so no change runs meanwhile. A dump that fails stores
// nothing; its error is a *DumpError with the tool's messages.
func (s *Service) Dump(ctx context.Context, minion string, progress Progress) (*DumpResult, error) {
	db, release, err := s.reserve(ctx, minion, "dump")
	if err != nil {
		return nil, err
	}
	defer release()
	say(progress, "Dumping the %s database of %s…", db.Kind, db.Minion)
	return s.dump(ctx, db, progress)
}

// reserve takes the minion's lock and finds its database.
func (s *Service) reserve(ctx context.Context, minion, what string) (*Database, func(), error) {
	release, err := s.o.Engine.Lock(minion, what)
	if err != nil {
		return nil, nil, err
	}
	db, err := s.o.Engine.Database(ctx, minion)
	if err != nil {
		release()
		return nil, nil, err
	}
	return db, release, nil
}

// dump streams a dump straight into the repository: the repository reads
// the tool's output through a pipe, and the pipe ends in the dump's error
// instead of a clean end unless the dump is whole, so the repository
// aborts and writes no manifest. No temporary file, anywhere.
func (s *Service) dump(ctx context.Context, db *Database, progress Progress) (*DumpResult, error) {
	d, err := s.dumper(db.Kind)
	if err != nil {
		return nil, err
	}
	// Recorded for test restores (verifyrestore.go); nil if they cannot be had.
	counts := s.countRows(ctx, db)
	started := time.Now()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := d.Dump(ctx, db, pw)
		pw.CloseWithError(err) // nil: a clean end
		done <- err
	}()
	var payload io.Reader = pr
	if progress != nil {
		payload = &rateReader{r: pr, what: "Dumping " + db.Minion, say: progress, every: progressEvery, start: started, last: started}
	}
	res, storeErr := s.o.Repo.Store(ctx, storage.Meta{Minion: db.Minion, Kind: storage.KindDump, DBKind: db.Kind, Images: db.Images, Counts: counts}, payload)
	pr.CloseWithError(errStoreStopped) // a dump still writing stops
	dumpErr := <-done
	var de *DumpError
	switch {
	case storeErr != nil && errors.Is(dumpErr, errStoreStopped):
		// The repository failed first; the dump only lost its reader.
		s.log.Error("storing a dump", "db", db, "err", storeErr)
		return nil, fmt.Errorf("storing the dump of %s: %w", db.Minion, storeErr)
	case errors.As(dumpErr, &de):
		s.log.Error("a dump failed; nothing was stored", "db", db, "err", dumpErr)
		return nil, dumpErr
	case storeErr != nil:
		s.log.Error("storing a dump", "db", db, "err", storeErr)
		return nil, fmt.Errorf("storing the dump of %s: %w", db.Minion, storeErr)
	case dumpErr != nil:
		return nil, fmt.Errorf("dumping %s: %w", db.Minion, dumpErr)
	}
	took := time.Since(started)
	s.log.Info("dumped a database", "db", db, "backup", res.Manifest.ID, "bytes", res.Manifest.Payload.Size, "took", took)
	return &DumpResult{StoreResult: res, Took: took}, nil
}

var errStoreStopped = errors.New("the backup repository stopped reading the dump")

func say(progress Progress, format string, args ...any) {
	if progress != nil {
		progress(fmt.Sprintf(format, args...))
	}
}
