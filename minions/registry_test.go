package minions

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// A stand-in for Docker Hub's registry and token server (the real ones are
// not reachable here): tags behind a bearer token, in two pages.
func TestRegistryTagsTokenFlowAndPages(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			if r.URL.Query().Get("scope") != "repository:wekanteam/wekan:pull" || r.URL.Query().Get("service") != "registry.test" {
				http.Error(w, "bad scope", http.StatusBadRequest)
				return
			}
			fmt.Fprint(w, `{"token":"t0k"}`)
		case r.Header.Get("Authorization") != "Bearer t0k":
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="registry.test",scope="repository:wekanteam/wekan:pull"`, srv.URL))
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Query().Get("last") == "":
			w.Header().Set("Link", `</v2/wekanteam/wekan/tags/list?last=v7.10&n=2>; rel="next"`)
			fmt.Fprint(w, `{"tags":["v7.9","v7.10"]}`)
		default:
			fmt.Fprint(w, `{"tags":["v7.61","latest","v6.99"]}`)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://") // 127.0.0.1:port, so plain http is used
	tags, err := registryTags(context.Background(), srv.Client(), host+"/wekanteam/wekan:v7.61")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags, []string{"v7.9", "v7.10", "v7.61", "latest", "v6.99"}) {
		t.Fatalf("tags %v", tags)
	}
	if got := SortVersions(tags, "v7.61"); !slices.Equal(got, []string{"v7.61", "v7.10", "v7.9", "v6.99"}) {
		t.Fatalf("sorted %v", got)
	}
}

func TestSortVersionsKeepsTheFlavour(t *testing.T) {
	tags := []string{"6.6.2-apache", "6.6.2-fpm", "6.6.2", "6.7.0-apache", "6.10.1-apache", "latest", "beta-6.8-apache", "6.5-apache"}
	tests := []struct {
		current string
		want    []string
	}{
		{"6.6.2-apache", []string{"6.10.1-apache", "6.7.0-apache", "6.6.2-apache", "6.5-apache"}},
		{"6.6.2", []string{"6.6.2"}},
		{"17.3.4-ce.0", nil},
	}
	for _, tt := range tests {
		if got := SortVersions(tags, tt.current); !slices.Equal(got, tt.want) {
			t.Errorf("SortVersions(current %s) = %v, want %v", tt.current, got, tt.want)
		}
	}
	gitlab := []string{"17.3.4-ce.0", "17.3.10-ce.0", "17.3.4-ee.0", "17.4.0-ce.1"}
	if got := SortVersions(gitlab, "17.3.4-ce.0"); !slices.Equal(got, []string{"17.4.0-ce.1", "17.3.10-ce.0", "17.3.4-ce.0"}) {
		t.Errorf("gitlab: %v", got)
	}
}
