package notifications

import (
	"strings"
	"testing"
	"time"
)

// Every built-in sample parses into an event recipes can filter on.
func TestSamplesParse(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for _, kind := range []string{KindGitLab, KindGitHub, KindGitea, KindNextcloud, KindGeneric, KindSlack, SourceDocker, SourceMaintenance} {
		src := Source{Name: "s", Kind: kind}
		names := SampleNames(kind)
		if len(names) == 0 {
			t.Errorf("%s has no sample", kind)
		}
		for _, n := range names {
			ev, err := Sample(src, n, now)
			if err != nil {
				t.Errorf("%s %s: %v", kind, n, err)
				continue
			}
			if ev.Type == "" || ev.Source != "s" || ev.Kind != kind {
				t.Errorf("%s %s: event %+v", kind, n, ev)
			}
		}
	}
	ev, err := Sample(Source{Name: "gl", Kind: KindGitLab}, "pipeline-failed", now)
	if err != nil || ev.Status != "failed" || ev.Type != "pipeline" {
		t.Errorf("pipeline-failed = %+v, %v", ev, err)
	}
	ev, err = Sample(Source{Name: "gh", Kind: KindGitHub}, `{"ref":"refs/heads/dev","commits":[],"repository":{"full_name":"a/b"}}`, now)
	if err != nil || ev.Type != "push" || ev.Ref != "dev" {
		t.Errorf("pasted push = %+v, %v", ev, err)
	}
	if _, err := Sample(Source{Name: "gl", Kind: KindGitLab}, "nope", now); err == nil || !strings.Contains(err.Error(), "pipeline-failed") {
		t.Errorf("unknown sample: %v, want the list of samples", err)
	}
}
