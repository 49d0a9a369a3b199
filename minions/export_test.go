package minions

import (
	"context"
	"testing"

	"github.com/docker/docker/client"
)

// UnreachableErr, for the external tests too.
var UnreachableErr = unreachableErr

// unreachableErr is the real client's own error for a daemon it cannot
// reach.
func unreachableErr(t testing.TB) error {
	t.Helper()
	dead, err := client.NewClientWithOpts(client.WithHost("unix://" + t.TempDir() + "/docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	_, connErr := dead.Ping(context.Background())
	if !client.IsErrConnectionFailed(connErr) {
		t.Fatalf("no connection error from a missing socket: %v", connErr)
	}
	return connErr
}
