package maintenance

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Keys of a cold backup's Manifest.Counts (a dump's keys are its tables).
const (
	CountFiles = "files" // regular files in the archive
	CountBytes = "bytes" // their bytes
)

// countTimeout bounds counting at dump time: counts are a help for test
// restores, never a reason for a dump to wait long or fail.
const countTimeout = 10 * time.Minute

// rowCounter counts what a database holds, per table (per collection for
// MongoDB), with the kind's own client inside its container.
type rowCounter func(ctx context.Context, d Docker, db *Database) (map[string]int64, error)

func counterFor(kind string) (rowCounter, error) {
	switch kind {
	case "postgres":
		return countPostgres, nil
	case "mysql", "mariadb":
		return countMySQL, nil
	case "mongodb":
		return countMongo, nil
	}
	return nil, fmt.Errorf("no row counter for database kind %q", kind)
}

// countRows counts a database's rows just before it is dumped, for the
// manifest. A test restore compares them with what the dump gives back.
// They are taken just before the dump starts, so an app writing in
// between can make a test restore report a small difference; that is
// said in its report. A count that fails only leaves them out.
//
// MongoDB is not counted here: without a mongo shell, a count is a second
// whole mongodump, which would double every dump's time.
func (s *Service) countRows(ctx context.Context, db *Database) map[string]int64 {
	if db.Kind == "mongodb" {
		return nil
	}
	count, err := counterFor(db.Kind)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, countTimeout)
	defer cancel()
	counts, err := count(ctx, s.o.Docker, db)
	if err != nil {
		s.log.Warn("counting rows before a dump; the backup will not record them", "db", db, "err", err)
		return nil
	}
	return counts
}

// pgCountSQL counts every table's rows in one statement: query_to_xml runs
// a count(*) per table, so no client-side loop is needed.
const pgCountSQL = `SELECT CASE WHEN table_schema = 'public' THEN table_name ELSE table_schema || '.' || table_name END
  || E'\t' || (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text
FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1`

func countPostgres(ctx context.Context, d Docker, db *Database) (map[string]int64, error) {
	var out bytes.Buffer
	cmd := []string{"psql", "-X", "-v", "ON_ERROR_STOP=1", "--no-password", "-tA", "-U", db.User, "-d", db.Name, "-c", pgCountSQL}
	if _, err := runTool(ctx, d, db, "count", "psql", execSpec{Cmd: cmd, Env: pgEnv(db), Stdout: &out}); err != nil {
		return nil, err
	}
	return parseCounts(out.String())
}

// mysqlCountSQL builds one UNION of a COUNT(*) per table and runs it.
const mysqlCountSQL = `SET SESSION group_concat_max_len = 16777216;
SET @summoner_q = (SELECT GROUP_CONCAT(CONCAT('SELECT ', QUOTE(table_name), ', COUNT(*) FROM ` + "`" + `', REPLACE(table_name, '` + "`" + `', '` + "``" + `'), '` + "`" + `') SEPARATOR ' UNION ALL ')
  FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE');
SET @summoner_q = COALESCE(@summoner_q, 'SELECT 1, 1 FROM DUAL WHERE FALSE');
PREPARE summoner_counts FROM @summoner_q;
EXECUTE summoner_counts;
DEALLOCATE PREPARE summoner_counts;`

func countMySQL(ctx context.Context, d Docker, db *Database) (map[string]int64, error) {
	var out bytes.Buffer
	cmd := either("mariadb", "mysql", "-N", "-B", "--user="+db.User, db.Name, "-e", mysqlCountSQL)
	if _, err := runTool(ctx, d, db, "count", "mysql", execSpec{Cmd: cmd, Env: mysqlEnv(db), Stdout: &out}); err != nil {
		return nil, err
	}
	return parseCounts(out.String())
}

// countMongo needs no mongo shell (the image may have none): mongodump
// into /dev/null says "done dumping db.coll (N documents)" per collection.
func countMongo(ctx context.Context, d Docker, db *Database) (map[string]int64, error) {
	return countMongoAt(ctx, d, db)
}

// countMongoAt runs that count with extra arguments (a --host).
func countMongoAt(ctx context.Context, d Docker, db *Database, extra ...string) (map[string]int64, error) {
	var out bytes.Buffer
	err := (&Mongo{Docker: d}).withConfig(ctx, db, "count", func(auth []string) error {
		// Its messages go to stderr, which runExec keeps only the end of;
		// sh sends them to stdout, read whole.
		cmd := append([]string{"sh", "-c", `exec "$0" "$@" 2>&1`, "mongodump", "--archive=/dev/null", "--db=" + db.Name}, extra...)
		cmd = append(cmd, auth...)
		_, err := runTool(ctx, d, db, "count", "mongodump", execSpec{Cmd: cmd, Stdout: &out})
		return err
	})
	if err != nil {
		return nil, err
	}
	return parseMongoCounts(out.String(), db.Name), nil
}

var mongoDoneRE = regexp.MustCompile(`done dumping (.+) \((\d+) documents?\)\s*$`)

// parseMongoCounts reads mongodump's or mongorestore's per-collection lines.
func parseMongoCounts(out, dbName string) map[string]int64 {
	counts := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := mongoDoneRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			continue
		}
		counts[strings.TrimPrefix(m[1], dbName+".")] = n
	}
	return counts
}

// parseCounts reads "table<TAB>rows" lines.
func parseCounts(out string) (map[string]int64, error) {
	counts := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		i := strings.LastIndexByte(line, '\t')
		if i < 0 {
			return nil, fmt.Errorf("reading row counts: unexpected line %q", line)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(line[i+1:]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("reading row counts: %q: %w", line, err)
		}
		counts[line[:i]] = n
	}
	return counts, nil
}
