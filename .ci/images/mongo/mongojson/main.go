// Command mongojson is the test mongo image's stand-in for mongosh (which
// cannot be built here): enough to write and read documents through
// `docker exec` and to serve as the compose health check.
//
//	mongojson ping                      exit 0 once the server answers
//	mongojson insert DB COLL DOC...     insert documents (extended JSON)
//	mongojson count DB                  {"coll": n, ...} for every collection
//	mongojson dump [DB...]              every document, one JSON line each, in a
//	                                    stable order (by database, collection,
//	                                    _id), for checksums; no DB: all but
//	                                    admin, config and local
//	mongojson run DB CMD                run a database command (extended JSON),
//	                                    print the reply
//
// It connects to $MONGO_URI, or to 127.0.0.1:27017 as
// $MONGO_INITDB_ROOT_USERNAME (authSource admin) when that is set, as the
// image's entrypoint configured the server: inside the container a
// `docker exec` needs no credentials on its command line.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

const usage = `usage: mongojson [-timeout D] ping | insert DB COLL DOC... | count DB | dump [DB...] | run DB CMD`

func main() {
	timeout := flag.Duration("timeout", 30*time.Second, "for the whole command")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, usage) }
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	err := run(ctx, flag.Args(), os.Stdout)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mongojson:", err)
		os.Exit(1)
	}
}

func connect(ctx context.Context) (*mongo.Client, error) {
	opts := options.Client().SetServerSelectionTimeout(5 * time.Second).SetConnectTimeout(5 * time.Second)
	if uri := os.Getenv("MONGO_URI"); uri != "" {
		opts.ApplyURI(uri)
	} else {
		opts.ApplyURI("mongodb://127.0.0.1:27017/").SetDirect(true)
		if u := os.Getenv("MONGO_INITDB_ROOT_USERNAME"); u != "" {
			opts.SetAuth(options.Credential{Username: u, Password: os.Getenv("MONGO_INITDB_ROOT_PASSWORD"), AuthSource: "admin"})
		}
	}
	return mongo.Connect(ctx, opts)
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	argc := map[string][2]int{"ping": {0, 0}, "insert": {3, -1}, "count": {1, 1}, "dump": {0, -1}, "run": {2, 2}}
	n, ok := argc[cmd]
	if !ok || len(args) < n[0] || (n[1] >= 0 && len(args) > n[1]) {
		return errors.New(usage)
	}
	c, err := connect(ctx)
	if err != nil {
		return err
	}
	defer c.Disconnect(context.WithoutCancel(ctx))
	switch cmd {
	case "ping":
		return c.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
	case "insert":
		docs := make([]any, len(args)-2)
		for i, s := range args[2:] {
			var d bson.D
			if err := bson.UnmarshalExtJSON([]byte(s), false, &d); err != nil {
				return fmt.Errorf("document %d: %w", i+1, err)
			}
			docs[i] = d
		}
		res, err := c.Database(args[0]).Collection(args[1]).InsertMany(ctx, docs)
		if err != nil {
			return err
		}
		return json.NewEncoder(out).Encode(map[string]int{"inserted": len(res.InsertedIDs)})
	case "count":
		return count(ctx, c.Database(args[0]), out)
	case "dump":
		return dump(ctx, c, args, out)
	default: // run
		var command bson.D
		if err := bson.UnmarshalExtJSON([]byte(args[1]), false, &command); err != nil {
			return fmt.Errorf("command: %w", err)
		}
		var reply bson.D
		if err := c.Database(args[0]).RunCommand(ctx, command).Decode(&reply); err != nil {
			return err
		}
		return printExt(out, reply, false)
	}
}

func count(ctx context.Context, db *mongo.Database, out io.Writer) error {
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	for _, name := range names {
		if counts[name], err = db.Collection(name).CountDocuments(ctx, bson.D{}); err != nil {
			return fmt.Errorf("counting %s: %w", name, err)
		}
	}
	return json.NewEncoder(out).Encode(counts) // keys sorted
}

func dump(ctx context.Context, c *mongo.Client, dbs []string, out io.Writer) error {
	if len(dbs) == 0 {
		all, err := c.ListDatabaseNames(ctx, bson.D{})
		if err != nil {
			return err
		}
		for _, d := range all {
			if d != "admin" && d != "config" && d != "local" {
				dbs = append(dbs, d)
			}
		}
	}
	slices.Sort(dbs)
	for _, name := range dbs {
		db := c.Database(name)
		colls, err := db.ListCollectionNames(ctx, bson.D{})
		if err != nil {
			return err
		}
		slices.Sort(colls)
		for _, coll := range colls {
			cur, err := db.Collection(coll).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				return fmt.Errorf("reading %s.%s: %w", name, coll, err)
			}
			for cur.Next(ctx) {
				var doc bson.D
				if err := cur.Decode(&doc); err != nil {
					cur.Close(ctx)
					return err
				}
				// Canonical extended JSON keeps types (int32 vs double,
				// dates), so equal checksums mean equal data.
				line := bson.D{{Key: "db", Value: name}, {Key: "collection", Value: coll}, {Key: "document", Value: doc}}
				if err := printExt(out, line, true); err != nil {
					cur.Close(ctx)
					return err
				}
			}
			err = cur.Err()
			cur.Close(ctx)
			if err != nil {
				return fmt.Errorf("reading %s.%s: %w", name, coll, err)
			}
		}
	}
	return nil
}

func printExt(out io.Writer, v any, canonical bool) error {
	b, err := bson.MarshalExtJSON(v, canonical, false)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}
