package bootstrap

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestMergeLogRotation(t *testing.T) {
	tests := []struct {
		name    string
		old     string
		want    map[string]any // nil: unchanged
		added   int
		wantErr string
	}{
		{name: "absent", old: "", added: 3, want: map[string]any{
			"log-driver": "json-file", "log-opts": map[string]any{"max-size": "10m", "max-file": "3"}}},
		{name: "empty object", old: "{}\n", added: 3, want: map[string]any{
			"log-driver": "json-file", "log-opts": map[string]any{"max-size": "10m", "max-file": "3"}}},
		{name: "null", old: "null", added: 3, want: map[string]any{
			"log-driver": "json-file", "log-opts": map[string]any{"max-size": "10m", "max-file": "3"}}},
		{name: "other keys kept", old: `{"registry-mirrors": ["https://m.example"], "data-root": "/data/docker", "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}]}`, added: 3,
			want: map[string]any{
				"registry-mirrors": []any{"https://m.example"}, "data-root": "/data/docker",
				"default-address-pools": []any{map[string]any{"base": "10.10.0.0/16", "size": float64(24)}},
				"log-driver":            "json-file", "log-opts": map[string]any{"max-size": "10m", "max-file": "3"}}},
		{name: "existing log-driver kept", old: `{"log-driver": "local"}`, added: 2,
			want: map[string]any{"log-driver": "local", "log-opts": map[string]any{"max-size": "10m", "max-file": "3"}}},
		{name: "a driver without these options is left alone", old: `{"log-driver": "journald"}`},
		{name: "existing log-opts kept", old: `{"log-opts": {"max-size": "100m", "labels": "app"}}`, added: 2,
			want: map[string]any{"log-driver": "json-file", "log-opts": map[string]any{"max-size": "100m", "max-file": "3", "labels": "app"}}},
		{name: "already rotating", old: `{"log-driver": "json-file", "log-opts": {"max-size": "1g", "max-file": "9"}}`},
		{name: "invalid JSON", old: `{"log-driver": "json-file",}`, wantErr: "not a JSON object"},
		{name: "not an object", old: `["x"]`, wantErr: "not a JSON object"},
		{name: "log-driver not a string", old: `{"log-driver": 3}`, wantErr: "log-driver is not a string"},
		{name: "log-opts not an object", old: `{"log-opts": "max-size=1m"}`, wantErr: "log-opts is not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			merged, added, err := MergeLogRotation([]byte(tt.old))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(added) != tt.added {
				t.Errorf("added %q, want %d keys", added, tt.added)
			}
			if tt.want == nil {
				if string(merged) != tt.old {
					t.Errorf("changed an already rotating file:\n%s", merged)
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(merged, &got); err != nil {
				t.Fatalf("merged is not JSON: %v\n%s", err, merged)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("merged %v\nwant %v", got, tt.want)
			}
			// Merging again changes nothing.
			again, added2, err := MergeLogRotation(merged)
			if err != nil || len(added2) != 0 || string(again) != string(merged) {
				t.Errorf("a second merge changed %q", added2)
			}
		})
	}
}
