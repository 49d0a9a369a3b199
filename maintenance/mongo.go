package maintenance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Mongo dumps with mongodump --archive and restores with mongorestore
// --drop --archive.
//
// The MongoDB tools take a password only on the command line or from a
// --config file, so the password goes into a file written in the
// container through an exec's input (mode 0600 from the start), used, and
// removed afterwards, whatever happened.
//
// Whole-dump check: the tool exited 0, the output starts with the
// archive's magic number and ends with its terminator (a BSON document's
// last byte, then 0xFFFFFFFF), which mongodump writes last.
type Mongo struct {
	Docker Docker
	// AuthDB is where the user is defined; the official image's
	// MONGO_INITDB_ROOT_USERNAME lives in "admin", the default.
	AuthDB string
}

var _ Dumper = (*Mongo)(nil)

var mongoArchive = format{
	name: "mongodump archive", head: []byte{0x6d, 0xe2, 0x99, 0x81},
	tail: func(end []byte) bool { return bytes.HasSuffix(end, []byte{0x00, 0xff, 0xff, 0xff, 0xff}) },
	want: "the archive's terminator",
}

// Dump runs mongodump --archive on the minion's database.
func (m *Mongo) Dump(ctx context.Context, db *Database, w io.Writer) error {
	return m.withConfig(ctx, db, "dump", func(auth []string) error {
		cmd := append([]string{"mongodump", "--archive", "--db=" + db.Name}, auth...)
		return dumpWith(ctx, m.Docker, db, "mongodump", mongoArchive, execSpec{Cmd: cmd}, w)
	})
}

// Restore runs mongorestore --drop --archive, limited to the minion's
// database.
func (m *Mongo) Restore(ctx context.Context, db *Database, r io.Reader) error {
	return m.withConfig(ctx, db, "restore", func(auth []string) error {
		cmd := append([]string{"mongorestore", "--drop", "--archive", "--nsInclude=" + db.Name + ".*"}, auth...)
		_, err := runTool(ctx, m.Docker, db, "restore", "mongorestore", execSpec{Cmd: cmd, Stdin: r})
		return err
	})
}

// withConfig writes the password into a config file in the container for
// the time of run, which gets the tools' authentication arguments. Without
// a user, the server runs without authentication and there is no file.
func (m *Mongo) withConfig(ctx context.Context, db *Database, op string, run func(auth []string) error) (err error) {
	if db.User == "" {
		return run(nil)
	}
	authDB := m.AuthDB
	if authDB == "" {
		authDB = "admin"
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("naming the credentials file: %w", err)
	}
	path := "/tmp/summoner-" + hex.EncodeToString(b[:]) + ".yml"
	conf, err := yaml.Marshal(map[string]string{"password": db.Password})
	if err != nil {
		return fmt.Errorf("writing the credentials file: %w", err)
	}
	// The file is removed even when the command was cancelled, within a
	// bound; it is written with umask 077, so it is never readable by others.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, rerr := runTool(rctx, m.Docker, db, op, "rm", execSpec{Cmd: []string{"rm", "-f", path}}); rerr != nil && err == nil {
			err = fmt.Errorf("removing the credentials file %s from %s: %w", path, db.Container, rerr)
		}
	}()
	if _, err := runTool(ctx, m.Docker, db, op, "sh", execSpec{
		Cmd:   []string{"sh", "-c", `umask 077 && cat > "$0"`, path},
		Stdin: strings.NewReader(string(conf)),
	}); err != nil {
		return fmt.Errorf("writing the credentials file into %s: %w", db.Container, err)
	}
	return run([]string{"--config=" + path, "--username=" + db.User, "--authenticationDatabase=" + authDB})
}
