package maintenance

import (
	"context"
	"io"
)

// Postgres dumps with pg_dump's custom format, uncompressed (the
// repository compresses on every core), and restores with pg_restore.
//
// Whole-dump check: the custom format has no end marker, so a dump counts
// when pg_dump itself exited 0 (read from Docker, never through a shell
// pipe that would hide it) and the output starts with the format's PGDMP
// header. pg_dump writes its table of contents first and exits non-zero
// on any error, so a cut-short stream cannot pass; a test restore
// (pg_restore of the whole dump) proves the rest.
type Postgres struct{ Docker Docker }

var _ Dumper = (*Postgres)(nil)

var pgCustom = format{name: "pg_dump custom-format archive", head: []byte("PGDMP")}

// pgEnv passes the password in the environment: libpq reads PGPASSWORD,
// so no command line ever holds it.
func pgEnv(db *Database) []string {
	return []string{"PGPASSWORD=" + db.Password}
}

// Dump runs pg_dump -Fc -Z0.
func (p *Postgres) Dump(ctx context.Context, db *Database, w io.Writer) error {
	cmd := []string{"pg_dump", "-Fc", "-Z0", "--no-password", "-U", db.User, "-d", db.Name}
	return dumpWith(ctx, p.Docker, db, "pg_dump", pgCustom, execSpec{Cmd: cmd, Env: pgEnv(db)}, w)
}

// Restore runs pg_restore --clean --if-exists in one transaction: a
// restore that fails midway leaves the database as it was.
func (p *Postgres) Restore(ctx context.Context, db *Database, r io.Reader) error {
	cmd := []string{"pg_restore", "--clean", "--if-exists", "--single-transaction", "--exit-on-error", "--no-password", "-U", db.User, "-d", db.Name}
	_, err := runTool(ctx, p.Docker, db, "restore", "pg_restore", execSpec{Cmd: cmd, Env: pgEnv(db), Stdin: r})
	return err
}
