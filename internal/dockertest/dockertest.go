// Package dockertest gives integration tests the real Docker engine and
// the local registry that .ci/docker.sh starts, and cleans up what earlier
// runs left behind.
//
// Without SUMMONER_IT_DOCKER the tests skip, unless SUMMONER_INTEGRATION=1
// (as in CI), where a missing engine is a failure.
package dockertest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/summoner-bot/summoner/internal/itgate"
)

// Env is the engine and the registry mirror.
type Env struct {
	Client   *client.Client
	Registry string // host:port of the local registry, used as the mirror
}

// Require returns the engine, or skips (fails, in CI) without one.
func Require(t testing.TB) *Env {
	t.Helper()
	if os.Getenv("SUMMONER_IT_DOCKER") == "" {
		itgate.Skip(t, "SUMMONER_IT_DOCKER is not set (no Docker engine): run `bash .ci/docker.sh all` and source /var/tmp/summoner-ci/docker.env")
	}
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("Docker engine: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &Env{Client: c, Registry: os.Getenv("SUMMONER_IT_REGISTRY")}
}

// RemoveMinion force-removes every container and the network of a minion,
// left by this or an earlier run.
func (e *Env) RemoveMinion(t testing.TB, minion string) {
	t.Helper()
	ctx := context.Background()
	list, err := e.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "summoner.minion="+minion))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if err := e.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Logf("removing %s: %v", c.ID, err)
		}
	}
	_ = e.Client.NetworkRemove(ctx, minion+"_default")
	_, _ = e.Client.NetworksPrune(ctx, filters.NewArgs(filters.Arg("label", "summoner.minion="+minion)))
}

// Containers counts a minion's containers, running or not.
func (e *Env) Containers(t testing.TB, minion string) []container.Summary {
	t.Helper()
	list, err := e.Client.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "summoner.minion="+minion))})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// NetworkExists tells whether a network is there.
func (e *Env) NetworkExists(t testing.TB, name string) bool {
	t.Helper()
	_, err := e.Client.NetworkInspect(context.Background(), name, network.InspectOptions{})
	return err == nil
}

// Exec runs a command in a container and returns its output and exit code.
func (e *Env) Exec(t testing.TB, id string, env []string, cmd ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex, err := e.Client.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, Env: env, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	att, err := e.Client.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	defer att.Close()
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	st, err := e.Client.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	return out.String(), st.ExitCode
}
