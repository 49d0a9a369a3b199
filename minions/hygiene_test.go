package minions

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/schema"
	"github.com/compose-spec/compose-go/v2/tree"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/summoner-bot/summoner/internal/dockertest"
)

// hygCase is one compose key: a snippet of the web service (and maybe of
// the file's top level), and either what it sets or the refusal it gets.
type hygCase struct {
	name    string
	key     string // the service key it exercises ("" for top-level keys)
	service string // lines of the web service, indented by 4
	top     string // top-level lines, if any
	check   func(t *testing.T, c *container.Config, h *container.HostConfig)
	refused string // part of the refusal message; "" means it must render
}

// hygRender renders a minion whose web service has the snippet; a db
// service is there for keys that name another service.
func hygRender(t *testing.T, tc hygCase) (*Plan, error) {
	t.Helper()
	compose := "services:\n  web:\n    image: nginx:1.27\n" + tc.service +
		"  db:\n    image: postgres:15.10\n" + tc.top
	m := &Minion{
		Name: "hyg", Version: "1.0", Subdomain: "hyg", Web: Web{Service: "web", Port: 80},
		compose: []byte(compose), source: "test",
	}
	return Render(context.Background(), m, RenderOptions{Domain: "example.com", VSRoot: "/srv/v", DBSRoot: "/srv/d"})
}

func hygIs[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func hygHas(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s = %q, lacks %q", what, got, w)
		}
	}
}

var hygCases = []hygCase{
	{name: "annotations", key: "annotations", service: "    annotations: {com.example.a: b}\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Annotations", h.Annotations["com.example.a"], "b")
		}},
	{name: "attach", key: "attach", service: "    attach: false\n", refused: "service web uses attach, which Summoner does not support"},
	{name: "blkio_config", key: "blkio_config", service: "    blkio_config: {weight: 300}\n", refused: "service web uses blkio_config, which Summoner does not support"},
	{name: "build", key: "build", service: "    build: .\n", refused: "service web uses build, which Summoner does not support: Summoner runs published images"},
	{name: "cap_add harmless", key: "cap_add", service: "    cap_drop: [ALL]\n    cap_add: [CHOWN, CAP_SETUID]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygHas(t, "CapAdd", h.CapAdd, "CHOWN", "CAP_SETUID")
		}},
	{name: "cap_add SYS_ADMIN", key: "cap_add", service: "    cap_add: [SYS_ADMIN]\n", refused: "service web uses cap_add SYS_ADMIN, which would give it power over the server"},
	{name: "cap_add NET_ADMIN", key: "cap_add", service: "    cap_add: [cap_net_admin]\n", refused: "service web uses cap_add cap_net_admin, which would"},
	{name: "cap_add ALL", key: "cap_add", service: "    cap_add: [ALL]\n", refused: "service web uses cap_add ALL, which would give it every power over the server; Summoner refuses it"},
	{name: "cap_drop", key: "cap_drop", service: "    cap_drop: [NET_RAW]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygHas(t, "CapDrop", h.CapDrop, "NET_RAW")
		}},
	{name: "cgroup private", key: "cgroup", service: "    cgroup: private\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "CgroupnsMode", h.CgroupnsMode, container.CgroupnsModePrivate)
		}},
	{name: "cgroup host", key: "cgroup", service: "    cgroup: host\n", refused: "service web uses cgroup: host, which would let it see the server's control groups; Summoner refuses it"},
	{name: "cgroup_parent", key: "cgroup_parent", service: "    cgroup_parent: system.slice\n", refused: "service web uses cgroup_parent, which would move it out of the limits"},
	{name: "command", key: "command", service: "    command: [nginx, -g, daemon off;]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Cmd", strings.Join(c.Cmd, " "), "nginx -g daemon off;")
		}},
	{name: "configs", key: "configs", service: "    configs: [site]\n", top: "configs:\n  site:\n    content: hello\n", refused: "service web uses configs, which Summoner does not support"},
	{name: "container_name", key: "container_name", service: "    container_name: mine\n", refused: "service web uses container_name, which Summoner does not support: Summoner names containers itself"},
	{name: "cpu_count", key: "cpu_count", service: "    cpu_count: 2\n", refused: "service web uses cpu_count, which Summoner does not support"},
	{name: "cpu_percent", key: "cpu_percent", service: "    cpu_percent: 50\n", refused: "service web uses cpu_percent, which Summoner does not support"},
	{name: "cpu_period", key: "cpu_period", service: "    cpu_period: 100000\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "CPUPeriod", h.CPUPeriod, 100000)
		}},
	{name: "cpu_quota", key: "cpu_quota", service: "    cpu_quota: 50000\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "CPUQuota", h.CPUQuota, 50000)
		}},
	{name: "cpu_rt_period", key: "cpu_rt_period", service: "    cpu_rt_period: 1000000\n", refused: "service web uses cpu_rt_period, which would let it take the CPU"},
	{name: "cpu_rt_runtime", key: "cpu_rt_runtime", service: "    cpu_rt_runtime: 950000\n", refused: "service web uses cpu_rt_runtime, which would let it take the CPU"},
	{name: "cpu_shares", key: "cpu_shares", service: "    cpu_shares: 512\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "CPUShares", h.CPUShares, 512)
		}},
	{name: "cpus", key: "cpus", service: "    cpus: 1.5\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "NanoCPUs", h.NanoCPUs, 1_500_000_000)
		}},
	{name: "cpuset", key: "cpuset", service: "    cpuset: 0-1\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "CpusetCpus", h.CpusetCpus, "0-1")
		}},
	{name: "credential_spec", key: "credential_spec", service: "    credential_spec: {registry: x}\n", refused: "service web uses credential_spec, which Summoner does not support"},
	{name: "depends_on healthy", key: "depends_on", service: "    depends_on: {db: {condition: service_healthy}}\n"},
	{name: "depends_on completed", key: "depends_on", service: "    depends_on: {db: {condition: service_completed_successfully}}\n", refused: "service web uses depends_on db with condition service_completed_successfully, which Summoner does not support"},
	{name: "depends_on optional", key: "depends_on", service: "    depends_on: {db: {condition: service_started, required: false}}\n", refused: "service web uses depends_on db with required: false"},
	{name: "depends_on restart", key: "depends_on", service: "    depends_on: {db: {condition: service_started, restart: true}}\n", refused: "service web uses depends_on.db.restart, which Summoner does not support"},
	{name: "deploy", key: "deploy", service: "    deploy: {resources: {limits: {memory: 1g}}}\n", refused: "service web uses deploy, which Summoner does not support: use mem_limit"},
	{name: "develop", key: "develop", service: "    develop: {watch: [{path: ., action: restart}]}\n", refused: "service web uses develop, which Summoner does not support"},
	{name: "device_cgroup_rules", key: "device_cgroup_rules", service: "    device_cgroup_rules: ['c 1:3 mr']\n", refused: "service web uses device_cgroup_rules, which would let it reach the host's devices; Summoner refuses it"},
	{name: "devices", key: "devices", service: "    devices: [/dev/fuse]\n", refused: "minion hyg: service web uses devices, which would let it reach the host's devices; Summoner refuses it"},
	{name: "dns", key: "dns", service: "    dns: [9.9.9.9]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) { hygHas(t, "DNS", h.DNS, "9.9.9.9") }},
	{name: "dns_opt", key: "dns_opt", service: "    dns_opt: [use-vc]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygHas(t, "DNSOptions", h.DNSOptions, "use-vc")
		}},
	{name: "dns_search", key: "dns_search", service: "    dns_search: [example.com]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygHas(t, "DNSSearch", h.DNSSearch, "example.com")
		}},
	{name: "domainname", key: "domainname", service: "    domainname: example.com\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Domainname", c.Domainname, "example.com")
		}},
	{name: "entrypoint", key: "entrypoint", service: "    entrypoint: [/bin/sh, -c]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Entrypoint", strings.Join(c.Entrypoint, " "), "/bin/sh -c")
		}},
	{name: "entrypoint cleared", key: "entrypoint", service: "    entrypoint: []\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			if c.Entrypoint == nil || len(c.Entrypoint) != 0 {
				t.Errorf("Entrypoint = %#v, want empty (clears the image's)", c.Entrypoint)
			}
		}},
	{name: "no entrypoint", service: "",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			if c.Entrypoint != nil {
				t.Errorf("Entrypoint = %#v, want nil (the image's)", c.Entrypoint)
			}
		}},
	{name: "env_file", key: "env_file", service: "    env_file: [{path: ./app.env, required: false}]\n", refused: "service web uses env_file, which Summoner does not support: put the variables under environment"},
	{name: "environment", key: "environment", service: "    environment: {A: b}\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) { hygHas(t, "Env", c.Env, "A=b") }},
	{name: "expose", key: "expose", service: "    expose: [\"9000\"]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			if _, ok := c.ExposedPorts["9000/tcp"]; !ok {
				t.Errorf("ExposedPorts = %v", c.ExposedPorts)
			}
		}},
	{name: "extends", key: "extends", service: "    extends: {service: db}\n    environment: {A: b}\n",
		// compose-go merges the extended service; its keys are checked as the web's own.
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Image", c.Image, "nginx:1.27")
			hygHas(t, "Env", c.Env, "A=b")
		}},
	{name: "extends privileged", key: "extends", service: "    extends: {service: root}\n", top: "  root:\n    image: busybox:1.36\n    privileged: true\n",
		refused: "service web uses privileged"},
	{name: "external_links", key: "external_links", service: "    external_links: [other]\n", refused: "service web uses external_links, which would connect it to containers outside its minion"},
	{name: "extra_hosts", key: "extra_hosts", service: "    extra_hosts: [\"api.example.com:10.0.0.1\"]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygHas(t, "ExtraHosts", h.ExtraHosts, "api.example.com:10.0.0.1")
		}},
	{name: "gpus", key: "gpus", service: "    gpus: all\n", refused: "service web uses gpus, which would let it reach the host's graphics cards"},
	{name: "group_add", key: "group_add", service: "    group_add: [audio]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygHas(t, "GroupAdd", h.GroupAdd, "audio")
		}},
	{name: "healthcheck", key: "healthcheck", service: "    healthcheck: {test: [CMD, 'true'], interval: 5s, start_interval: 1s}\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Healthcheck.Interval", c.Healthcheck.Interval.String(), "5s")
			hygIs(t, "Healthcheck.StartInterval", c.Healthcheck.StartInterval.String(), "1s")
		}},
	{name: "hostname", key: "hostname", service: "    hostname: box\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Hostname", c.Hostname, "box")
		}},
	{name: "image", key: "image", service: "",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Image", c.Image, "nginx:1.27")
		}},
	{name: "init", key: "init", service: "    init: true\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			if h.Init == nil || !*h.Init {
				t.Errorf("Init = %v", h.Init)
			}
		}},
	{name: "ipc shareable", key: "ipc", service: "    ipc: shareable\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "IpcMode", h.IpcMode, "shareable")
		}},
	{name: "ipc host", key: "ipc", service: "    ipc: host\n", refused: "service web uses ipc: host, which would share the server's shared memory with it; Summoner refuses it"},
	{name: "isolation", key: "isolation", service: "    isolation: process\n", refused: "service web uses isolation, which Summoner does not support"},
	{name: "label_file", key: "label_file", service: "    label_file: ./labels\n", refused: "service web uses label_file, which Summoner does not support"},
	{name: "labels", key: "labels", service: "    labels: {com.example.team: ops}\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "label", c.Labels["com.example.team"], "ops")
		}},
	{name: "links", key: "links", service: "    links: [db]\n", refused: "service web uses links, which Summoner does not support"},
	{name: "logging", key: "logging", service: "    logging: {driver: local, options: {max-size: 5m}}\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "LogConfig.Type", h.LogConfig.Type, "local")
			hygIs(t, "max-size", h.LogConfig.Config["max-size"], "5m")
			hygIs(t, "max-file", h.LogConfig.Config["max-file"], "")
		}},
	{name: "log rotation by default", service: "",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "LogConfig.Type", h.LogConfig.Type, "json-file")
			hygIs(t, "max-size", h.LogConfig.Config["max-size"], "10m")
			hygIs(t, "max-file", h.LogConfig.Config["max-file"], "3")
		}},
	{name: "mac_address", key: "mac_address", service: "    mac_address: 02:42:ac:11:00:02\n", refused: "service web uses mac_address, which Summoner does not support"},
	{name: "mem_limit", key: "mem_limit", service: "    mem_limit: 512m\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Memory", h.Memory, 512<<20)
		}},
	{name: "mem_reservation", key: "mem_reservation", service: "    mem_reservation: 256m\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "MemoryReservation", h.MemoryReservation, 256<<20)
		}},
	{name: "mem_swappiness", key: "mem_swappiness", service: "    mem_swappiness: 10\n", refused: "service web uses mem_swappiness, which Summoner does not support"},
	{name: "memswap_limit", key: "memswap_limit", service: "    mem_limit: 512m\n    memswap_limit: 1g\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "MemorySwap", h.MemorySwap, 1<<30)
		}},
	{name: "models", key: "models", service: "    models: [llm]\n", top: "models:\n  llm:\n    model: ai/smollm2\n", refused: "service web uses models, which Summoner does not support"},
	{name: "network_mode host", key: "network_mode", service: "    network_mode: host\n", refused: "service web uses network_mode, which would put it on the server's own network, where it can reach every local service; Summoner refuses it"},
	{name: "network_mode none", key: "network_mode", service: "    network_mode: none\n", refused: "service web uses network_mode, which would take it off its minion's network"},
	{name: "networks", key: "networks", service: "    networks: [default]\n", refused: "service web uses networks, which Summoner does not support: each minion gets a network of its own"},
	{name: "oom_kill_disable", key: "oom_kill_disable", service: "    oom_kill_disable: true\n", refused: "service web uses oom_kill_disable, which could freeze the whole server"},
	{name: "oom_kill_disable false", key: "oom_kill_disable", service: "    oom_kill_disable: false\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			if h.OomKillDisable != nil && *h.OomKillDisable {
				t.Errorf("OomKillDisable = true")
			}
		}},
	{name: "oom_score_adj", key: "oom_score_adj", service: "    oom_score_adj: 500\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "OomScoreAdj", h.OomScoreAdj, 500)
		}},
	{name: "oom_score_adj negative", key: "oom_score_adj", service: "    oom_score_adj: -500\n", refused: "service web uses oom_score_adj -500, which would make the server kill its other programs first"},
	{name: "pid", key: "pid", service: "    pid: host\n", refused: "service web uses pid, which would let it see and signal every process of the server; Summoner refuses it"},
	{name: "pids_limit", key: "pids_limit", service: "    pids_limit: 100\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			if h.PidsLimit == nil || *h.PidsLimit != 100 {
				t.Errorf("PidsLimit = %v", h.PidsLimit)
			}
		}},
	{name: "platform", key: "platform", service: "    platform: linux/amd64\n", refused: "service web uses platform, which Summoner does not support"},
	{name: "ports", key: "ports", service: "    ports: [\"127.0.0.1:8080:80\"]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			b := h.PortBindings[nat.Port("80/tcp")]
			if len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != "8080" {
				t.Errorf("PortBindings = %v", h.PortBindings)
			}
		}},
	{name: "ports name", key: "ports", service: "    ports: [{target: 80, published: \"8080\", name: web}]\n", refused: "service web uses ports.name, which Summoner does not support"},
	{name: "ports mode host", key: "ports", service: "    ports: [{target: 80, published: \"8080\", mode: host}]\n", refused: "service web uses ports 80 with mode: host, which Summoner does not support"},
	{name: "post_start", key: "post_start", service: "    post_start: [{command: [\"true\"]}]\n", refused: "service web uses post_start, which Summoner does not support"},
	{name: "pre_start", key: "pre_start", service: "    pre_start: [{command: [\"true\"]}]\n", refused: "service web uses pre_start, which Summoner does not support"},
	{name: "pre_stop", key: "pre_stop", service: "    pre_stop: [{command: [\"true\"]}]\n", refused: "service web uses pre_stop, which Summoner does not support"},
	{name: "privileged", key: "privileged", service: "    privileged: true\n", refused: "minion hyg: service web uses privileged, which would give it full control of the server; Summoner refuses it"},
	{name: "privileged false", key: "privileged", service: "    privileged: false\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Privileged", h.Privileged, false)
		}},
	{name: "profiles", key: "profiles", service: "    profiles: [debug]\n", refused: "service web uses profiles, which Summoner does not support"},
	{name: "provider", key: "provider", service: "    provider: {type: model}\n", refused: "service web uses provider, which Summoner does not support"},
	{name: "pull_policy", key: "pull_policy", service: "    pull_policy: always\n", refused: "service web uses pull_policy, which Summoner does not support"},
	{name: "pull_refresh_after", key: "pull_refresh_after", service: "    pull_refresh_after: 1h\n", refused: "service web uses pull_refresh_after, which Summoner does not support"},
	{name: "read_only", key: "read_only", service: "    read_only: true\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "ReadonlyRootfs", h.ReadonlyRootfs, true)
		}},
	{name: "restart on-failure:3", key: "restart", service: "    restart: on-failure:3\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "RestartPolicy.Name", h.RestartPolicy.Name, container.RestartPolicyOnFailure)
			hygIs(t, "RestartPolicy.MaximumRetryCount", h.RestartPolicy.MaximumRetryCount, 3)
		}},
	{name: "restart default", service: "",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "RestartPolicy.Name", h.RestartPolicy.Name, container.RestartPolicyUnlessStopped)
		}},
	{name: "restart no", key: "restart", service: "    restart: \"no\"\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "RestartPolicy.Name", h.RestartPolicy.Name, container.RestartPolicyDisabled)
		}},
	{name: "restart always:3", key: "restart", service: "    restart: always:3\n", refused: "service web uses restart always:3, which Summoner does not support"},
	{name: "restart unknown", key: "restart", service: "    restart: sometimes\n", refused: "service web uses restart sometimes, which Summoner does not support"},
	{name: "runtime", key: "runtime", service: "    runtime: runc\n", refused: "service web uses runtime, which would run it with another container runtime"},
	{name: "scale", key: "scale", service: "    scale: 2\n", refused: "service web uses scale, which Summoner does not support"},
	{name: "secrets", key: "secrets", service: "    secrets: [pw]\n", top: "secrets:\n  pw:\n    environment: PW\n", refused: "service web uses secrets, which Summoner does not support"},
	{name: "security_opt no-new-privileges", key: "security_opt", service: "    security_opt: [\"no-new-privileges:true\"]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygHas(t, "SecurityOpt", h.SecurityOpt, "no-new-privileges:true")
		}},
	{name: "security_opt seccomp", key: "security_opt", service: "    security_opt: [seccomp=unconfined]\n", refused: "service web uses security_opt seccomp=unconfined, which would turn off the confinement that keeps it in its container; Summoner refuses it"},
	{name: "security_opt seccomp colon", key: "security_opt", service: "    security_opt: [\"seccomp:unconfined\"]\n", refused: "security_opt seccomp:unconfined, which would turn off the confinement"},
	{name: "security_opt apparmor", key: "security_opt", service: "    security_opt: [apparmor=unconfined]\n", refused: "security_opt apparmor=unconfined, which would turn off the confinement"},
	{name: "security_opt label disable", key: "security_opt", service: "    security_opt: [label=disable]\n", refused: "security_opt label=disable, which would turn off the confinement"},
	{name: "security_opt label:disable", key: "security_opt", service: "    security_opt: [\"label:disable\"]\n", refused: "security_opt label:disable, which would turn off the confinement"},
	{name: "security_opt systempaths", key: "security_opt", service: "    security_opt: [systempaths=unconfined]\n", refused: "security_opt systempaths=unconfined, which would turn off the confinement"},
	{name: "security_opt label type", key: "security_opt", service: "    security_opt: [\"label=type:spc_t\"]\n", refused: "security_opt label=type:spc_t, which Summoner does not support: only no-new-privileges"},
	{name: "shm_size", key: "shm_size", service: "    shm_size: 64m\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "ShmSize", h.ShmSize, 64<<20)
		}},
	{name: "stdin_open", key: "stdin_open", service: "    stdin_open: true\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "OpenStdin", c.OpenStdin, true)
		}},
	{name: "stop_grace_period", key: "stop_grace_period", service: "    stop_grace_period: 30s\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			if c.StopTimeout == nil || *c.StopTimeout != 30 {
				t.Errorf("StopTimeout = %v", c.StopTimeout)
			}
		}},
	{name: "stop_signal", key: "stop_signal", service: "    stop_signal: SIGQUIT\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "StopSignal", c.StopSignal, "SIGQUIT")
		}},
	{name: "storage_opt", key: "storage_opt", service: "    storage_opt: {size: 1G}\n", refused: "service web uses storage_opt, which Summoner does not support"},
	{name: "sysctls", key: "sysctls", service: "    sysctls: {net.core.somaxconn: 1024}\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Sysctls", h.Sysctls["net.core.somaxconn"], "1024")
		}},
	{name: "tmpfs", key: "tmpfs", service: "    tmpfs: [\"/run:size=1m\"]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Tmpfs", h.Tmpfs["/run"], "size=1m")
		}},
	{name: "tty", key: "tty", service: "    tty: true\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) { hygIs(t, "Tty", c.Tty, true) }},
	{name: "ulimits", key: "ulimits", service: "    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			if len(h.Ulimits) != 2 || h.Ulimits[0].Name != "nofile" || h.Ulimits[0].Hard != 2048 || h.Ulimits[1].Soft != 512 {
				t.Errorf("Ulimits = %v", h.Ulimits)
			}
		}},
	{name: "umask", key: "umask", service: "    umask: \"0022\"\n", refused: "service web uses umask, which Summoner does not support"},
	{name: "use_api_socket", key: "use_api_socket", service: "    use_api_socket: true\n", refused: "service web uses use_api_socket, which would give it the Docker socket"},
	{name: "user", key: "user", service: "    user: \"1000:1000\"\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "User", c.User, "1000:1000")
		}},
	{name: "userns_mode", key: "userns_mode", service: "    userns_mode: host\n", refused: "service web uses userns_mode, which would turn off the user namespace"},
	{name: "uts", key: "uts", service: "    uts: host\n", refused: "service web uses uts, which would share the host's hostname"},
	{name: "volumes bind", key: "volumes", service: "    volumes: [\"${DATA}/html:/usr/share/nginx/html:ro\", {type: bind, source: \"${DATA}/z\", target: /z, bind: {selinux: z}}]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygHas(t, "Binds", h.Binds, "/srv/v/hyg/html:/usr/share/nginx/html:ro", "/srv/v/hyg/z:/z:z")
		}},
	{name: "volumes tmpfs", key: "volumes", service: "    volumes: [{type: tmpfs, target: /cache, tmpfs: {size: 1048576, mode: 0o1777}}]\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "Tmpfs", h.Tmpfs["/cache"], "size=1048576,mode=1777")
		}},
	{name: "volumes outside", key: "volumes", service: "    volumes: [\"/etc:/host-etc\"]\n", refused: "minion hyg: service web uses volumes /etc:/host-etc, which reaches outside the minion's own folders"},
	{name: "volumes escape", key: "volumes", service: "    volumes: [\"${DATA}/../../etc:/x\"]\n", refused: "service web uses volumes /srv/etc:/x, which reaches outside"},
	{name: "volumes docker socket", key: "volumes", service: "    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n", refused: "service web uses volumes /var/run/docker.sock, which would give it control of Docker, and so of the whole server; Summoner refuses it"},
	{name: "volumes named", key: "volumes", service: "    volumes: [\"/anonymous\"]\n", refused: "service web uses volumes /anonymous (a volume volume), which Summoner does not support"},
	{name: "volumes propagation", key: "volumes", service: "    volumes: [\"${DATA}/x:/x:rshared\"]\n", refused: "service web uses volumes.bind.propagation, which Summoner does not support"},
	{name: "volumes no create", key: "volumes", service: "    volumes: [{type: bind, source: \"${DATA}/x\", target: /x, bind: {create_host_path: false}}]\n", refused: "service web uses volumes /x with create_host_path: false"},
	{name: "volumes_from", key: "volumes_from", service: "    volumes_from: [db]\n", refused: "service web uses volumes_from, which would give it the files of another container"},
	{name: "working_dir", key: "working_dir", service: "    working_dir: /app\n",
		check: func(t *testing.T, c *container.Config, h *container.HostConfig) {
			hygIs(t, "WorkingDir", c.WorkingDir, "/app")
		}},
	{name: "top-level networks", top: "networks:\n  front: {}\n", refused: "minion hyg: compose file uses networks, which Summoner does not support"},
	{name: "top-level volumes", top: "volumes:\n  data: {}\n", refused: "minion hyg: compose file uses volumes, which Summoner does not support"},
	{name: "top-level name", top: "name: other\n", refused: "minion hyg: compose file uses name, which Summoner does not support"},
}

// TestComposeKeysAreAppliedOrRefused renders one snippet per compose key:
// each is either applied (checked on the container's configuration) or
// refused with a message naming the minion, the service and the key.
func TestComposeKeysAreAppliedOrRefused(t *testing.T) {
	for _, tc := range hygCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := hygRender(t, tc)
			if tc.refused != "" {
				if err == nil {
					t.Fatalf("rendered; want a refusal containing %q", tc.refused)
				}
				var ue *Error
				if !errors.As(err, &ue) {
					t.Errorf("the refusal is a %T, not a message for the user", err)
				}
				if !strings.Contains(err.Error(), tc.refused) || !strings.HasPrefix(err.Error(), "minion hyg: ") {
					t.Fatalf("error %q\nwant it to start with the minion and contain %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			web := p.Service("web")
			if tc.check != nil {
				tc.check(t, web.Config, web.Host)
			}
		})
	}
}

// TestEveryComposeKeyIsCovered fails when compose-go learns a service key
// that the table above does not exercise, so a new key gets a decision.
func TestEveryComposeKeyIsCovered(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range hygCases {
		covered[tc.key] = true
	}
	for _, p := range schema.AttributePaths() {
		parts := p.Parts()
		if len(parts) != 3 || parts[0] != "services" || parts[1] != tree.PathMatchAll {
			continue
		}
		if !covered[parts[2]] {
			t.Errorf("compose key %s has no case in hygCases: decide whether Summoner applies or refuses it", parts[2])
		}
	}
	for _, k := range appliedKeys {
		if !covered[k] {
			t.Errorf("applied key %s has no case in hygCases", k)
		}
	}
}

// TestRefusalsAreAllReported lists every problem at once, so fixing a
// minion takes one round, not one per key.
func TestRefusalsAreAllReported(t *testing.T) {
	_, err := hygRender(t, hygCase{service: "    privileged: true\n    cap_add: [SYS_ADMIN]\n    volumes: [\"/:/host\"]\n"})
	if err == nil {
		t.Fatal("rendered")
	}
	for _, want := range []string{"uses privileged", "uses cap_add SYS_ADMIN", "uses volumes /:/host"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%s", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("%d lines, want 3:\n%s", n, err)
	}
}

// TestHygieneOnDocker summons the test minion on the real engine through
// WithTimeouts: every container gets rotated logs, and status, logs and
// banish --purge work through the decorator.
func TestHygieneOnDocker(t *testing.T) {
	d := dockertest.Require(t)
	d.RemoveMinion(t, "testmin")
	t.Cleanup(func() { d.RemoveMinion(t, "testmin") })
	cat, err := LoadCatalog("testdata/minions")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	e := NewEngine(WithTimeouts(d.Client, Timeouts{}), cat, EngineOptions{
		Domain: "hyg.summoner.test", VSRoot: filepath.Join(dir, "volumes"), DBSRoot: filepath.Join(dir, "databases"),
		Mirror: Mirror{Registry: d.Registry}, State: &StateStore{Dir: filepath.Join(dir, "state")},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx := context.Background()
	if _, err := e.Summon(ctx, "testmin", "", map[string]string{"HTTP_PORT": port}, nil); err != nil {
		t.Fatalf("summon: %v", err)
	}
	for _, c := range d.Containers(t, "testmin") {
		info, err := d.Client.ContainerInspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		lc := info.HostConfig.LogConfig
		if lc.Type != "json-file" || lc.Config["max-size"] != "10m" || lc.Config["max-file"] != "3" {
			t.Errorf("%s logs with %+v, want json-file rotated at 10m x 3", c.Names, lc)
		}
	}
	st, err := e.Status(ctx, "testmin")
	if err != nil || len(st) != 1 || len(st[0].Services) != 2 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if _, err := e.Logs(ctx, "testmin", "db", 5); err != nil {
		t.Errorf("logs: %v", err)
	}
	if ok, err := e.Summoned(ctx, "testmin"); !ok || err != nil {
		t.Errorf("Summoned = %v, %v; want true", ok, err)
	}
	if err := e.Banish(ctx, "testmin", true); err != nil {
		t.Fatalf("banish --purge: %v", err)
	}
	if n := len(d.Containers(t, "testmin")); n != 0 {
		t.Errorf("%d containers left after banish --purge", n)
	}
	if ok, err := e.Summoned(ctx, "testmin"); ok || err != nil {
		t.Errorf("after purge Summoned = %v, %v; want false", ok, err)
	}
}
