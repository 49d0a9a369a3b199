package minions

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/docker/docker/api/types/container"
)

// RunningDatabase is what a dump or a restore needs to reach a minion's
// database: its running container and credentials. (Database is the
// minion.yml section it comes from.) Password is a secret: String,
// GoString and LogValue leave it out, so it never reaches a log line or
// an error by accident.
type RunningDatabase struct {
	Minion      string
	Kind        string // postgres, mysql, mariadb, mongodb
	Service     string // the compose service
	ContainerID string
	Container   string // its name
	Image       string // the image as the minion names it
	Name        string // the database inside the server
	User        string
	Password    string
	// Images are the images of the minion's last good deployment, by
	// service, for the backup's manifest.
	Images map[string]string
	// Secrets are every secret value of the minion, longest first, to hide
	// in a tool's output.
	Secrets []string
}

func (d RunningDatabase) String() string {
	return fmt.Sprintf("%s database %s of %s in %s", d.Kind, d.Name, d.Minion, d.Container)
}

// GoString keeps %#v from printing the password.
func (d RunningDatabase) GoString() string { return d.String() }

// LogValue keeps the password out of structured logs.
func (d RunningDatabase) LogValue() slog.Value {
	return slog.GroupValue(slog.String("minion", d.Minion), slog.String("kind", d.Kind), slog.String("container", d.Container))
}

// Database finds a summoned minion's database container, which must be
// running, and the credentials Summoner gave it.
func (e *Engine) Database(ctx context.Context, name string) (*RunningDatabase, error) {
	m, err := e.minion(name)
	if err != nil {
		return nil, err
	}
	if m.Database == nil {
		return nil, userErr(nil, "%s has no database, so there is nothing to dump or restore.", m.Name)
	}
	cs, err := e.containers(ctx, m.Name)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, userErr(nil, "%s is not summoned.", m.Name)
	}
	c, ok := cs[m.Database.Service]
	if !ok {
		return nil, userErr(nil, "%s has no database container (service %s): `summon %s` creates it.", m.Name, m.Database.Service, m.Name)
	}
	if c.State != container.StateRunning {
		return nil, userErr(nil, "The database of %s is not running (it is %s): `start %s` starts it.", m.Name, c.State, m.Name)
	}
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return nil, err
	}
	db := &RunningDatabase{
		Minion: m.Name, Kind: m.Database.Kind, Service: m.Database.Service,
		ContainerID: c.ID, Container: nameOf(c), Image: c.Labels[LabelImage],
		Name: m.Database.Name, User: m.Database.User,
		Images: st.Images, Secrets: e.secretsOf(m),
	}
	if db.Image == "" {
		db.Image = c.Image
	}
	if ps := m.Database.PasswordSetting; ps != "" {
		db.Password = st.Secrets[ps]
		if v := st.Settings[ps]; v != "" {
			db.Password = v
		}
		if db.Password == "" {
			if s, ok := m.Setting(ps); ok {
				db.Password = s.Default
			}
		}
	}
	return db, nil
}

// Lock marks work on a minion (e.g. "restore"), as summon and update do,
// so no other change runs on it meanwhile; a second one is refused with
// ErrBusy. The caller must call release.
func (e *Engine) Lock(name, what string) (release func(), err error) {
	m, err := e.minion(name)
	if err != nil {
		return nil, err
	}
	return e.lock(m.Name, what)
}

// StopApp stops a minion's services other than its database, dependents
// first, so nothing writes to the database while it is restored. It does
// not take the minion's lock: the caller holds it (see Lock).
func (e *Engine) StopApp(ctx context.Context, name string, progress Progress) error {
	m, err := e.minion(name)
	if err != nil {
		return err
	}
	defer e.changed(ctx, m.Name)
	list, err := e.ordered(ctx, m, true)
	if err != nil {
		return err
	}
	for _, c := range list {
		if c.Labels[LabelRole] == RoleDB || c.State != container.StateRunning {
			continue
		}
		if progress != nil {
			progress(fmt.Sprintf("Stopping %s…", nameOf(c)))
		}
		if err := e.docker.ContainerStop(ctx, c.ID, container.StopOptions{}); err != nil {
			return explainDocker(err, "stopping "+nameOf(c))
		}
	}
	return nil
}

// StartApp starts a minion's services other than its database in
// dependency order and waits until each is ready, as a summon does: the
// web service must pass its health check. Like StopApp, it leaves the
// lock to the caller.
func (e *Engine) StartApp(ctx context.Context, name string, progress Progress) error {
	m, err := e.minion(name)
	if err != nil {
		return err
	}
	defer e.changed(ctx, m.Name)
	say := func(format string, args ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, args...))
		}
	}
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return err
	}
	p, _, err := e.render(ctx, m, "", st, nil)
	if err != nil {
		return err
	}
	cs, err := e.containers(ctx, m.Name)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		return userErr(nil, "%s is not summoned.", m.Name)
	}
	timeout := e.healthTimeout(m)
	for _, s := range p.Services {
		c, ok := cs[s.Service]
		if !ok || s.Role == RoleDB {
			continue
		}
		// Checked with the plan's probe, but named as the container is:
		// a container from before a settings change keeps its name.
		s := *s
		s.Container = nameOf(c)
		restarts := -1
		if c.State != container.StateRunning {
			say("Starting %s…", s.Container)
			if err := e.docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
				return explainDocker(err, "starting "+s.Container)
			}
			restarts = 0
		}
		if err := e.waitHealthy(ctx, p, &s, c.ID, timeout, restarts, say); err != nil {
			return err
		}
	}
	return nil
}

// Explain puts an error in words for chat: a message written for the user
// as is, a deadline or a cancellation in words, any other error by its
// first line (the log has the rest).
func Explain(err error) string { return explainCause(err) }
