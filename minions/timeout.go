package minions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	dtypes "github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Timeouts bound each Docker call, so a frozen daemon fails a command with
// a clear message instead of holding it (and the minion's lock) forever.
// A zero field takes its default.
type Timeouts struct {
	// Call bounds the short calls: ping, inspect, list, create, start,
	// rename, remove and the network calls. Default 30s.
	Call time.Duration
	// Stop is added to the stop timeout a stop or restart asks for (or to
	// StopGrace when it asks for none), since Docker waits that long for
	// the container before killing it. Default 30s.
	Stop time.Duration
	// StopGrace is the wait assumed when a stop asks for no timeout and
	// the container's own stop_grace_period applies. Default 5m, longer
	// than any catalog minion's.
	StopGrace time.Duration
	// Pull bounds a whole image pull, from the request until its progress
	// stream is closed. Default 30m: a large image on a slow line.
	Pull time.Duration
	// Read bounds reading logs or stats, until the reader is closed.
	// Default 30s.
	Read time.Duration
}

// DefaultTimeouts are the timeouts a zero Timeouts stands for.
var DefaultTimeouts = Timeouts{
	Call: 30 * time.Second, Stop: 30 * time.Second, StopGrace: 5 * time.Minute,
	Pull: 30 * time.Minute, Read: 30 * time.Second,
}

func (t Timeouts) withDefaults() Timeouts {
	for _, f := range []struct {
		v *time.Duration
		d time.Duration
	}{{&t.Call, DefaultTimeouts.Call}, {&t.Stop, DefaultTimeouts.Stop}, {&t.StopGrace, DefaultTimeouts.StopGrace}, {&t.Pull, DefaultTimeouts.Pull}, {&t.Read, DefaultTimeouts.Read}} {
		if *f.v <= 0 {
			*f.v = f.d
		}
	}
	return t
}

// TimeoutError is a Docker call that got no answer within its own
// deadline (not the caller's: a cancelled command stays a cancellation).
type TimeoutError struct {
	Doing string        // what was asked, in words: "listing containers"
	After time.Duration // the deadline it missed
	Err   error
}

func (e *TimeoutError) Error() string { return e.UserMessage() }

// UserMessage marks the error as fit for chat; explainDocker gives a more
// precise one when the engine says what it was doing.
func (e *TimeoutError) UserMessage() string {
	return timeoutMessage(e.After, e.Doing)
}

// Unwrap gives the cause, context.DeadlineExceeded in most cases.
func (e *TimeoutError) Unwrap() error { return e.Err }

func timeoutMessage(after time.Duration, doing string) string {
	return fmt.Sprintf("Docker did not answer within %s while %s: is the Docker daemon overloaded or frozen? (on the server: `systemctl status docker`)", after, doing)
}

// WithTimeouts wraps d so that every call has a deadline of its own (the
// caller's ctx may end it sooner). Calls that return a stream (ImagePull,
// ContainerLogs, ContainerStats) keep their deadline running until the
// stream is closed: callers must close it, as they must anyway.
func WithTimeouts(d Docker, t Timeouts) Docker {
	return &timeoutDocker{d: d, t: t.withDefaults()}
}

type timeoutDocker struct {
	d Docker
	t Timeouts
}

var _ Docker = (*timeoutDocker)(nil)

// call runs f under a deadline of its own and names a missed one.
func call[T any](ctx context.Context, after time.Duration, doing string, f func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, after)
	defer cancel()
	v, err := f(cctx)
	return v, timedOut(ctx, cctx, err, after, doing)
}

// timedOut turns err into a TimeoutError if it came from our own deadline
// (cctx's), not from the caller's ctx.
func timedOut(ctx, cctx context.Context, err error, after time.Duration, doing string) error {
	if err == nil || ctx.Err() != nil || !errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return err
	}
	return &TimeoutError{Doing: doing, After: after, Err: err}
}

func noValue(err error) (struct{}, error) { return struct{}{}, err }

func (t *timeoutDocker) Ping(ctx context.Context) (dtypes.Ping, error) {
	return call(ctx, t.t.Call, "checking that Docker answers", func(ctx context.Context) (dtypes.Ping, error) {
		return t.d.Ping(ctx)
	})
}

func (t *timeoutDocker) ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error) {
	return call(ctx, t.t.Call, "looking for image "+ref, func(ctx context.Context) (image.InspectResponse, error) {
		return t.d.ImageInspect(ctx, ref, opts...)
	})
}

func (t *timeoutDocker) ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error) {
	return call(ctx, t.t.Call, "creating container "+name, func(ctx context.Context) (container.CreateResponse, error) {
		return t.d.ContainerCreate(ctx, cfg, host, net, platform, name)
	})
}

func (t *timeoutDocker) ContainerStart(ctx context.Context, id string, o container.StartOptions) error {
	_, err := call(ctx, t.t.Call, "starting container "+shortRef(id), func(ctx context.Context) (struct{}, error) {
		return noValue(t.d.ContainerStart(ctx, id, o))
	})
	return err
}

// stopAfter is how long a stop or restart may take: Docker waits for the
// container up to its stop timeout, then kills it.
func (t *timeoutDocker) stopAfter(o container.StopOptions) time.Duration {
	grace := t.t.StopGrace
	if o.Timeout != nil {
		grace = max(time.Duration(*o.Timeout)*time.Second, 0)
	}
	return grace + t.t.Stop
}

func (t *timeoutDocker) ContainerStop(ctx context.Context, id string, o container.StopOptions) error {
	_, err := call(ctx, t.stopAfter(o), "stopping container "+shortRef(id), func(ctx context.Context) (struct{}, error) {
		return noValue(t.d.ContainerStop(ctx, id, o))
	})
	return err
}

func (t *timeoutDocker) ContainerRestart(ctx context.Context, id string, o container.StopOptions) error {
	_, err := call(ctx, t.stopAfter(o), "restarting container "+shortRef(id), func(ctx context.Context) (struct{}, error) {
		return noValue(t.d.ContainerRestart(ctx, id, o))
	})
	return err
}

func (t *timeoutDocker) ContainerRemove(ctx context.Context, id string, o container.RemoveOptions) error {
	_, err := call(ctx, t.t.Call, "removing container "+shortRef(id), func(ctx context.Context) (struct{}, error) {
		return noValue(t.d.ContainerRemove(ctx, id, o))
	})
	return err
}

func (t *timeoutDocker) ContainerRename(ctx context.Context, id, newName string) error {
	_, err := call(ctx, t.t.Call, "renaming container "+shortRef(id)+" to "+newName, func(ctx context.Context) (struct{}, error) {
		return noValue(t.d.ContainerRename(ctx, id, newName))
	})
	return err
}

func (t *timeoutDocker) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	return call(ctx, t.t.Call, "inspecting container "+shortRef(id), func(ctx context.Context) (container.InspectResponse, error) {
		return t.d.ContainerInspect(ctx, id)
	})
}

func (t *timeoutDocker) ContainerList(ctx context.Context, o container.ListOptions) ([]container.Summary, error) {
	return call(ctx, t.t.Call, "listing containers", func(ctx context.Context) ([]container.Summary, error) {
		return t.d.ContainerList(ctx, o)
	})
}

func (t *timeoutDocker) NetworkCreate(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error) {
	return call(ctx, t.t.Call, "creating network "+name, func(ctx context.Context) (network.CreateResponse, error) {
		return t.d.NetworkCreate(ctx, name, o)
	})
}

func (t *timeoutDocker) NetworkInspect(ctx context.Context, id string, o network.InspectOptions) (network.Inspect, error) {
	return call(ctx, t.t.Call, "looking for network "+id, func(ctx context.Context) (network.Inspect, error) {
		return t.d.NetworkInspect(ctx, id, o)
	})
}

func (t *timeoutDocker) NetworkRemove(ctx context.Context, id string) error {
	_, err := call(ctx, t.t.Call, "removing network "+id, func(ctx context.Context) (struct{}, error) {
		return noValue(t.d.NetworkRemove(ctx, id))
	})
	return err
}

// stream starts a call that returns a stream: its deadline runs on after
// the call returns, until the stream is closed.
func stream(ctx context.Context, after time.Duration, doing string, f func(context.Context) (io.ReadCloser, error)) (io.ReadCloser, error) {
	cctx, cancel := context.WithTimeout(ctx, after)
	rc, err := f(cctx)
	if err != nil {
		cancel()
		return nil, timedOut(ctx, cctx, err, after, doing)
	}
	return &deadlineReader{rc: rc, ctx: ctx, cctx: cctx, cancel: cancel, after: after, doing: doing}, nil
}

func (t *timeoutDocker) ImagePull(ctx context.Context, ref string, o image.PullOptions) (io.ReadCloser, error) {
	return stream(ctx, t.t.Pull, "pulling "+ref, func(ctx context.Context) (io.ReadCloser, error) {
		return t.d.ImagePull(ctx, ref, o)
	})
}

func (t *timeoutDocker) ContainerLogs(ctx context.Context, id string, o container.LogsOptions) (io.ReadCloser, error) {
	return stream(ctx, t.t.Read, "reading the logs of container "+shortRef(id), func(ctx context.Context) (io.ReadCloser, error) {
		return t.d.ContainerLogs(ctx, id, o)
	})
}

func (t *timeoutDocker) ContainerStats(ctx context.Context, id string, streamStats bool) (container.StatsResponseReader, error) {
	var osType string
	rc, err := stream(ctx, t.t.Read, "reading the stats of container "+shortRef(id), func(ctx context.Context) (io.ReadCloser, error) {
		r, err := t.d.ContainerStats(ctx, id, streamStats)
		osType = r.OSType
		return r.Body, err
	})
	if err != nil {
		return container.StatsResponseReader{}, err
	}
	return container.StatsResponseReader{Body: rc, OSType: osType}, nil
}

// deadlineReader holds a stream's deadline until Close, and names a read
// that stopped because of it.
type deadlineReader struct {
	rc        io.ReadCloser
	ctx, cctx context.Context
	cancel    context.CancelFunc
	after     time.Duration
	doing     string
}

func (r *deadlineReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = timedOut(r.ctx, r.cctx, err, r.after, r.doing)
	}
	return n, err
}

func (r *deadlineReader) Close() error {
	defer r.cancel()
	return r.rc.Close()
}

// shortRef shortens a container ID for messages; names pass unchanged.
func shortRef(id string) string {
	if len(id) == 64 {
		return id[:12]
	}
	return id
}
