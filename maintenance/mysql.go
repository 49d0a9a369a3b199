package maintenance

import (
	"bytes"
	"context"
	"io"
)

// MySQL dumps MySQL and MariaDB with mysqldump or mariadb-dump, whichever
// the image has, and restores with mysql or mariadb.
//
// Whole-dump check: the tool exited 0 and its output ends with its own
// "-- Dump completed" trailer, which it writes last.
type MySQL struct{ Docker Docker }

var _ Dumper = (*MySQL)(nil)

var mysqlDump = format{name: "SQL dump", tail: endsWithDumpCompleted, want: `the "-- Dump completed" line the tool writes last`}

func endsWithDumpCompleted(end []byte) bool {
	end = bytes.TrimRight(end, " \r\n")
	i := bytes.LastIndexByte(end, '\n')
	return bytes.HasPrefix(end[i+1:], []byte("-- Dump completed"))
}

// mysqlEnv passes the password in the environment (MYSQL_PWD), which
// both MySQL's and MariaDB's clients read.
func mysqlEnv(db *Database) []string {
	return []string{"MYSQL_PWD=" + db.Password}
}

// either runs the first of two programs the image has, with the given
// arguments; sh only chooses, the arguments pass through untouched.
func either(preferred, fallback string, args ...string) []string {
	script := `if command -v "$0" >/dev/null 2>&1; then exec "$0" "$@"; fi; exec ` + fallback + ` "$@"`
	return append([]string{"sh", "-c", script, preferred}, args...)
}

// Dump runs mariadb-dump (or mysqldump) --single-transaction --routines
// --triggers --events. --no-tablespaces spares the app's user the
// PROCESS privilege MySQL 8 asks for otherwise.
func (m *MySQL) Dump(ctx context.Context, db *Database, w io.Writer) error {
	cmd := either("mariadb-dump", "mysqldump", "--single-transaction", "--routines", "--triggers", "--events",
		"--no-tablespaces", "--user="+db.User, db.Name)
	return dumpWith(ctx, m.Docker, db, "mysqldump", mysqlDump, execSpec{Cmd: cmd, Env: mysqlEnv(db)}, w)
}

// Restore feeds the dump to mariadb (or mysql). The dump drops and
// recreates each table it holds; tables made after it stay.
func (m *MySQL) Restore(ctx context.Context, db *Database, r io.Reader) error {
	cmd := either("mariadb", "mysql", "--user="+db.User, db.Name)
	_, err := runTool(ctx, m.Docker, db, "restore", "mysql", execSpec{Cmd: cmd, Env: mysqlEnv(db), Stdin: r})
	return err
}
