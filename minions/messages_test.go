package minions_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/summoner-bot/summoner/internal/golden"
)

// The engine's own words for the failures the commands package shows
// verbatim (commands/testdata/reply_*.golden has the whole replies), pinned
// on fakeDocker: a name not in the catalog, a change rolled back, an update
// rolled back.
func TestEngineMessages(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		golden string
		change func(t *testing.T, fx *fakeFixture) error
	}{
		{"error_unknown_minion", func(t *testing.T, fx *fakeFixture) error {
			_, err := fx.e.Summon(ctx, "nope", "", nil, nil)
			return err
		}},
		{"error_status_unknown_minion", func(t *testing.T, fx *fakeFixture) error {
			_, err := fx.e.Status(ctx, "nope")
			return err
		}},
		{"error_summon_rolled_back", func(t *testing.T, fx *fakeFixture) error {
			fx.f.fail(&fault{method: "ContainerCreate", target: fakeWeb, err: errors.New("no space left on device")})
			_, err := fx.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": freePort(t)}, nil)
			return err
		}},
		{"error_update_rolled_back", func(t *testing.T, fx *fakeFixture) error {
			_, err := fx.e.Update(ctx, testMinion, "1.2", nil)
			return err
		}},
		{"error_update_pull_failed", func(t *testing.T, fx *fakeFixture) error {
			fx.f.fail(&fault{method: "ImagePull", target: fx.image("1.1"), err: errors.New("received unexpected HTTP status: 502 Bad Gateway")})
			_, err := fx.e.Update(ctx, testMinion, "1.1", nil)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			fx := newFakeFixture(t, 0)
			// The registry stand-in listens on a random port.
			msg := strings.ReplaceAll(userMessage(t, tt.change(t, fx)), fx.reg, "registry.test")
			golden.AssertText(t, tt.golden, msg)
		})
	}
}
