package minions

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/distribution/reference"
)

// registryTags lists every tag of image's repository through the registry
// v2 API, following pagination and the bearer-token flow Docker Hub uses.
func registryTags(ctx context.Context, hc *http.Client, image string) ([]string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", image, err)
	}
	host := reference.Domain(named)
	if host == "docker.io" {
		host = "registry-1.docker.io"
	}
	scheme := "https"
	if h, _, err := net.SplitHostPort(host); err == nil && isLoopback(h) || isLoopback(host) {
		scheme = "http" // Docker itself treats loopback registries as insecure
	}
	next := fmt.Sprintf("%s://%s/v2/%s/tags/list?n=1000", scheme, host, reference.Path(named))
	var tags []string
	token := ""
	for next != "" && len(tags) < 100000 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("asking %s for the tags of %s: %w", host, reference.Path(named), err)
		}
		if resp.StatusCode == http.StatusUnauthorized && token == "" {
			challenge := resp.Header.Get("WWW-Authenticate")
			resp.Body.Close()
			if token, err = bearerToken(ctx, hc, challenge); err != nil {
				return nil, fmt.Errorf("logging in to %s: %w", host, err)
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				return nil, userErr(nil, "The registry %s has no image %s.", host, reference.Path(named))
			}
			return nil, fmt.Errorf("asking %s for the tags of %s: %s", host, reference.Path(named), resp.Status)
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the tags of %s: %w", reference.Path(named), err)
		}
		tags = append(tags, page.Tags...)
		next = nextLink(resp.Header.Get("Link"), next)
	}
	return tags, nil
}

func isLoopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

var challengeRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// bearerToken follows a WWW-Authenticate: Bearer realm=…,service=…,scope=…
// challenge anonymously, as `docker pull` of a public image does.
func bearerToken(ctx context.Context, hc *http.Client, challenge string) (string, error) {
	if !strings.HasPrefix(strings.ToLower(challenge), "bearer ") {
		return "", fmt.Errorf("the registry wants %q authentication, which is not supported", strings.SplitN(challenge, " ", 2)[0])
	}
	params := map[string]string{}
	for _, m := range challengeRE.FindAllStringSubmatch(challenge, -1) {
		params[m[1]] = m[2]
	}
	u, err := url.Parse(params["realm"])
	if err != nil || params["realm"] == "" {
		return "", fmt.Errorf("bad token realm %q", params["realm"])
	}
	q := u.Query()
	for _, k := range []string{"service", "scope"} {
		if params[k] != "" {
			q.Set(k, params[k])
		}
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token server answered %s", resp.Status)
	}
	var t struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil {
		return "", err
	}
	if t.Token == "" {
		t.Token = t.AccessToken
	}
	return t.Token, nil
}

// nextLink reads a Link: </v2/…?last=x>; rel="next" header.
func nextLink(link, current string) string {
	if link == "" {
		return ""
	}
	start, end := strings.Index(link, "<"), strings.Index(link, ">")
	if start < 0 || end < start || !strings.Contains(link, `rel="next"`) {
		return ""
	}
	base, err := url.Parse(current)
	if err != nil {
		return ""
	}
	ref, err := url.Parse(link[start+1 : end])
	if err != nil {
		return ""
	}
	return base.ResolveReference(ref).String()
}

var digitsRE = regexp.MustCompile(`[0-9.]+`)

// variant is a tag's flavour: "apache" for 6.6.2-apache, "ce" for
// 17.3.4-ce.0, "" for 15.10. Updates stay within a flavour.
func variant(v *semver.Version) string {
	return strings.Trim(digitsRE.ReplaceAllString(v.Prerelease(), ""), "-")
}

// SortVersions keeps the tags that are versions of the same flavour as
// current, newest first.
func SortVersions(tags []string, current string) []string {
	want := ""
	if cv, err := semver.NewVersion(current); err == nil {
		want = variant(cv)
	}
	type tv struct {
		tag string
		v   *semver.Version
	}
	var vs []tv
	for _, t := range tags {
		v, err := semver.NewVersion(t)
		if err != nil || variant(v) != want {
			continue
		}
		vs = append(vs, tv{t, v})
	}
	sort.SliceStable(vs, func(i, j int) bool {
		if c := vs[i].v.Compare(vs[j].v); c != 0 {
			return c > 0
		}
		return vs[i].tag > vs[j].tag
	})
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.tag
	}
	return out
}

// Versions lists the published versions of a minion's web image, newest
// first, and the version it runs now ("" if not summoned).
func (e *Engine) Versions(ctx context.Context, name string) (versions []string, current string, err error) {
	m, err := e.minion(name)
	if err != nil {
		return nil, "", err
	}
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return nil, "", err
	}
	current = st.Version
	ref := current
	if ref == "" {
		ref = m.Version
	}
	versions, err = e.publishedVersions(ctx, m, st, ref)
	return versions, current, err
}

// publishedVersions lists the registry's versions of the minion's web
// image in the flavour of ref, newest first.
func (e *Engine) publishedVersions(ctx context.Context, m *Minion, st *State, ref string) ([]string, error) {
	plan, _, err := e.render(ctx, m, "", st, nil)
	if err != nil {
		return nil, err
	}
	tags, err := registryTags(ctx, e.o.HTTPClient, plan.Service(m.Web.Service).Pull)
	if err != nil {
		return nil, err
	}
	return SortVersions(tags, ref), nil
}

// newestSameMajor picks, from versions sorted newest first, the newest of
// current's major version; current itself if there is none newer (a
// version that is no semantic version moves to the newest).
func newestSameMajor(sorted []string, current string) string {
	cv, err := semver.NewVersion(current)
	if err != nil {
		if len(sorted) > 0 {
			return sorted[0]
		}
		return current
	}
	for _, t := range sorted {
		v, err := semver.NewVersion(t)
		if err != nil || v.Major() != cv.Major() {
			continue
		}
		if v.GreaterThan(cv) {
			return t
		}
		break // sorted: nothing newer of this major
	}
	return current
}

// majorChange tells whether moving from one version to another changes
// the major version. Versions that cannot be compared count as a change:
// asking once too often is better than migrating data unasked.
func majorChange(from, to string) bool {
	if from == to {
		return false
	}
	fv, err1 := semver.NewVersion(from)
	tv, err2 := semver.NewVersion(to)
	if err1 != nil || err2 != nil {
		return true
	}
	return fv.Major() != tv.Major()
}
