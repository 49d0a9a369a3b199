package minions

import (
	"cmp"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	dtypes "github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// opsSlowDocker is a Docker daemon that never answers (block) or answers
// at once, and remembers the deadline and context of each call.
type opsSlowDocker struct {
	block bool

	mu        sync.Mutex
	deadlines map[string]time.Duration // method -> time left when called
	ctxs      map[string]context.Context
}

func (d *opsSlowDocker) wait(ctx context.Context, method string) error {
	d.record(ctx, method)
	if !d.block {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (d *opsSlowDocker) record(ctx context.Context, method string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.deadlines == nil {
		d.deadlines, d.ctxs = map[string]time.Duration{}, map[string]context.Context{}
	}
	if dl, ok := ctx.Deadline(); ok {
		d.deadlines[method] = time.Until(dl)
	} else {
		d.deadlines[method] = -1
	}
	d.ctxs[method] = ctx
}

// opsStream is a response body that blocks, as a stalled stream does,
// until the request's context ends.
type opsStream struct {
	ctx    context.Context
	closed bool
}

func (s *opsStream) Read([]byte) (int, error) {
	<-s.ctx.Done()
	return 0, s.ctx.Err()
}

func (s *opsStream) Close() error { s.closed = true; return nil }

func (d *opsSlowDocker) Ping(ctx context.Context) (dtypes.Ping, error) {
	return dtypes.Ping{}, d.wait(ctx, "Ping")
}
func (d *opsSlowDocker) ImageInspect(ctx context.Context, _ string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	return image.InspectResponse{}, d.wait(ctx, "ImageInspect")
}
func (d *opsSlowDocker) ImagePull(ctx context.Context, _ string, _ image.PullOptions) (io.ReadCloser, error) {
	d.record(ctx, "ImagePull") // the request is answered; the stream stalls
	return &opsStream{ctx: ctx}, nil
}
func (d *opsSlowDocker) ContainerCreate(ctx context.Context, _ *container.Config, _ *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, _ string) (container.CreateResponse, error) {
	return container.CreateResponse{}, d.wait(ctx, "ContainerCreate")
}
func (d *opsSlowDocker) ContainerStart(ctx context.Context, _ string, _ container.StartOptions) error {
	return d.wait(ctx, "ContainerStart")
}
func (d *opsSlowDocker) ContainerStop(ctx context.Context, _ string, _ container.StopOptions) error {
	return d.wait(ctx, "ContainerStop")
}
func (d *opsSlowDocker) ContainerRestart(ctx context.Context, _ string, _ container.StopOptions) error {
	return d.wait(ctx, "ContainerRestart")
}
func (d *opsSlowDocker) ContainerRemove(ctx context.Context, _ string, _ container.RemoveOptions) error {
	return d.wait(ctx, "ContainerRemove")
}
func (d *opsSlowDocker) ContainerRename(ctx context.Context, _, _ string) error {
	return d.wait(ctx, "ContainerRename")
}
func (d *opsSlowDocker) ContainerInspect(ctx context.Context, _ string) (container.InspectResponse, error) {
	return container.InspectResponse{}, d.wait(ctx, "ContainerInspect")
}
func (d *opsSlowDocker) ContainerList(ctx context.Context, _ container.ListOptions) ([]container.Summary, error) {
	return nil, d.wait(ctx, "ContainerList")
}
func (d *opsSlowDocker) ContainerLogs(ctx context.Context, _ string, _ container.LogsOptions) (io.ReadCloser, error) {
	d.record(ctx, "ContainerLogs")
	return &opsStream{ctx: ctx}, nil
}
func (d *opsSlowDocker) ContainerStats(ctx context.Context, _ string, _ bool) (container.StatsResponseReader, error) {
	d.record(ctx, "ContainerStats")
	return container.StatsResponseReader{Body: &opsStream{ctx: ctx}, OSType: "linux"}, nil
}
func (d *opsSlowDocker) NetworkCreate(ctx context.Context, _ string, _ network.CreateOptions) (network.CreateResponse, error) {
	return network.CreateResponse{}, d.wait(ctx, "NetworkCreate")
}
func (d *opsSlowDocker) NetworkInspect(ctx context.Context, _ string, _ network.InspectOptions) (network.Inspect, error) {
	return network.Inspect{}, d.wait(ctx, "NetworkInspect")
}
func (d *opsSlowDocker) NetworkRemove(ctx context.Context, _ string) error {
	return d.wait(ctx, "NetworkRemove")
}

var _ Docker = (*opsSlowDocker)(nil)

const opsTick = 20 * time.Millisecond

var opsTimeouts = Timeouts{Call: opsTick, Stop: opsTick, StopGrace: opsTick, Pull: opsTick, Read: opsTick}

// opsCalls is one call of every method of Docker; streams are read until
// they fail.
var opsCalls = []struct {
	name  string
	doing string
	call  func(ctx context.Context, d Docker) error
}{
	{"Ping", "checking that Docker answers", func(ctx context.Context, d Docker) error { _, err := d.Ping(ctx); return err }},
	{"ImageInspect", "looking for image nginx:1.27", func(ctx context.Context, d Docker) error {
		_, err := d.ImageInspect(ctx, "nginx:1.27")
		return err
	}},
	{"ImagePull", "pulling nginx:1.27", func(ctx context.Context, d Docker) error {
		rc, err := d.ImagePull(ctx, "nginx:1.27", image.PullOptions{})
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.ReadAll(rc)
		return err
	}},
	{"ContainerCreate", "creating container web-x", func(ctx context.Context, d Docker) error {
		_, err := d.ContainerCreate(ctx, &container.Config{}, &container.HostConfig{}, nil, nil, "web-x")
		return err
	}},
	{"ContainerStart", "starting container web-x", func(ctx context.Context, d Docker) error {
		return d.ContainerStart(ctx, "web-x", container.StartOptions{})
	}},
	{"ContainerStop", "stopping container web-x", func(ctx context.Context, d Docker) error {
		return d.ContainerStop(ctx, "web-x", container.StopOptions{})
	}},
	{"ContainerRestart", "restarting container web-x", func(ctx context.Context, d Docker) error {
		return d.ContainerRestart(ctx, "web-x", container.StopOptions{})
	}},
	{"ContainerRemove", "removing container web-x", func(ctx context.Context, d Docker) error {
		return d.ContainerRemove(ctx, "web-x", container.RemoveOptions{})
	}},
	{"ContainerRename", "renaming container web-x to web-x.summoner-old", func(ctx context.Context, d Docker) error {
		return d.ContainerRename(ctx, "web-x", "web-x.summoner-old")
	}},
	{"ContainerInspect", "inspecting container web-x", func(ctx context.Context, d Docker) error {
		_, err := d.ContainerInspect(ctx, "web-x")
		return err
	}},
	{"ContainerList", "listing containers", func(ctx context.Context, d Docker) error {
		_, err := d.ContainerList(ctx, container.ListOptions{})
		return err
	}},
	{"ContainerLogs", "reading the logs of container web-x", func(ctx context.Context, d Docker) error {
		rc, err := d.ContainerLogs(ctx, "web-x", container.LogsOptions{})
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.ReadAll(rc)
		return err
	}},
	{"ContainerStats", "reading the stats of container web-x", func(ctx context.Context, d Docker) error {
		r, err := d.ContainerStats(ctx, "web-x", false)
		if err != nil {
			return err
		}
		defer r.Body.Close()
		_, err = io.ReadAll(r.Body)
		return err
	}},
	{"NetworkCreate", "creating network web_default", func(ctx context.Context, d Docker) error {
		_, err := d.NetworkCreate(ctx, "web_default", network.CreateOptions{})
		return err
	}},
	{"NetworkInspect", "looking for network web_default", func(ctx context.Context, d Docker) error {
		_, err := d.NetworkInspect(ctx, "web_default", network.InspectOptions{})
		return err
	}},
	{"NetworkRemove", "removing network web_default", func(ctx context.Context, d Docker) error {
		return d.NetworkRemove(ctx, "web_default")
	}},
}

// opsStopDeadline: a stop may take its grace period and then some.
var opsStopDeadline = map[string]string{"ContainerStop": "40ms", "ContainerRestart": "40ms"}

// TestEveryDockerCallTimesOut: a daemon that never answers fails each call
// after its own deadline, with a message that says what was being done.
func TestEveryDockerCallTimesOut(t *testing.T) {
	for _, tc := range opsCalls {
		t.Run(tc.name, func(t *testing.T) {
			d := WithTimeouts(&opsSlowDocker{block: true}, opsTimeouts)
			err := tc.call(context.Background(), d)
			var te *TimeoutError
			if !errors.As(err, &te) {
				t.Fatalf("error %v (%T), want a *TimeoutError", err, err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
			}
			want := "Docker did not answer within " + cmp.Or(opsStopDeadline[tc.name], "20ms") + " while " + tc.doing + ": is the Docker daemon overloaded or frozen?"
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message %q\nwant it to contain %q", err, want)
			}
		})
	}
}

// TestEveryDockerMethodIsCovered fails when Docker gains a method that
// opsCalls does not exercise (and so, likely, that WithTimeouts lets
// through without a deadline).
func TestEveryDockerMethodIsCovered(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range opsCalls {
		covered[tc.name] = true
	}
	ty := reflect.TypeFor[Docker]()
	for i := range ty.NumMethod() {
		if m := ty.Method(i).Name; !covered[m] {
			t.Errorf("Docker.%s has no case in opsCalls", m)
		}
	}
}

// TestCallerEndIsNotATimeout: a command cancelled, or past its own
// deadline, is reported as such, not blamed on Docker.
func TestCallerEndIsNotATimeout(t *testing.T) {
	d := WithTimeouts(&opsSlowDocker{block: true}, Timeouts{Call: time.Hour})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.ContainerList(cancelled, container.ListOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: error %v, want context.Canceled", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), opsTick)
	defer cancel2()
	_, err := d.ContainerList(short, container.ListOptions{})
	var te *TimeoutError
	if errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller's deadline: error %v (%T), want the bare deadline", err, err)
	}
}

// TestStreamDeadlineLastsUntilClose: a pull's context stays alive after
// ImagePull returns, while the progress streams, and ends on Close.
func TestStreamDeadlineLastsUntilClose(t *testing.T) {
	fake := &opsSlowDocker{}
	d := WithTimeouts(fake, Timeouts{Pull: time.Hour})
	rc, err := d.ImagePull(context.Background(), "nginx:1.27", image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := fake.ctxs["ImagePull"]
	if ctx.Err() != nil {
		t.Fatalf("the pull's context ended when ImagePull returned: %v", ctx.Err())
	}
	if left := fake.deadlines["ImagePull"]; left < 59*time.Minute || left > time.Hour {
		t.Errorf("the pull had %s left, want about 1h", left)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("after Close the pull's context is %v, want cancelled", ctx.Err())
	}
}

// TestStopDeadlineCoversTheStopTimeout: Docker may wait the whole stop
// timeout before it kills a container; the deadline leaves it that time.
func TestStopDeadlineCoversTheStopTimeout(t *testing.T) {
	secs := 90
	tests := []struct {
		name string
		o    container.StopOptions
		want time.Duration
	}{
		{"asked timeout", container.StopOptions{Timeout: &secs}, 90*time.Second + DefaultTimeouts.Stop},
		{"container's own", container.StopOptions{}, DefaultTimeouts.StopGrace + DefaultTimeouts.Stop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &opsSlowDocker{}
			d := WithTimeouts(fake, Timeouts{})
			if err := d.ContainerStop(context.Background(), "web-x", tt.o); err != nil {
				t.Fatal(err)
			}
			if err := d.ContainerRestart(context.Background(), "web-x", tt.o); err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{"ContainerStop", "ContainerRestart"} {
				if left := fake.deadlines[m]; left > tt.want || left < tt.want-5*time.Second {
					t.Errorf("%s had %s left, want %s", m, left, tt.want)
				}
			}
		})
	}
}

// TestExplainDockerNamesTheTimeout: the engine's own words for what it was
// doing replace the decorator's.
func TestExplainDockerNamesTheTimeout(t *testing.T) {
	err := explainDocker(&TimeoutError{Doing: "listing containers", After: 30 * time.Second, Err: context.DeadlineExceeded}, "listing the containers of testmin")
	var ue *Error
	if !errors.As(err, &ue) {
		t.Fatalf("%T, want *Error", err)
	}
	want := "Docker did not answer within 30s while listing the containers of testmin: is the Docker daemon overloaded or frozen?"
	if !strings.HasPrefix(ue.UserMessage(), want) {
		t.Errorf("message %q\nwant %q…", ue.UserMessage(), want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("the cause is lost")
	}
}
