package minions_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/summoner-bot/summoner/minions"
)

// Claimed before public: a withheld minion gets no route, from the first
// table the gateway sees until Publish, across engines (an interrupted
// bootstrap, then the bot), and a mark that cannot be read keeps it off.
func TestWithholdKeepsAMinionOffTheGateway(t *testing.T) {
	ctx := context.Background()
	fx := newGWFixture(t, true)
	minionsOf := func(eps []minions.Endpoint) []string {
		var out []string
		for _, ep := range eps {
			out = append(out, ep.Minion)
		}
		return out
	}
	listed := func(e *minions.Engine) []string {
		t.Helper()
		eps, err := e.Endpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return minionsOf(eps)
	}

	if err := fx.e.Withhold(ctx, routesMinion); err != nil {
		t.Fatal(err)
	}
	fx.summon(t)
	if _, err := fx.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": freePort(t)}, nil); err != nil {
		t.Fatal(err)
	}
	for i, seen := range fx.gw.seen {
		if slices.Contains(minionsOf(seen), routesMinion) {
			t.Errorf("Changed call %d (%s) saw the withheld minion: %v", i, fx.gw.changed[i], minionsOf(seen))
		}
	}
	if got := listed(fx.e); !slices.Equal(got, []string{testMinion}) {
		t.Errorf("endpoints while withheld: %v, want only %s", got, testMinion)
	}
	if !answers(fx.settings["HTTP_PORT"]) {
		t.Error("the withheld minion does not answer on its loopback port")
	}

	// Another engine over the same state (the bot after an interrupted
	// bootstrap) keeps it off too.
	other := minions.NewEngine(fx.f, fx.e.Catalog(), minions.EngineOptions{Domain: "fake.test", State: &minions.StateStore{Dir: fx.stateDir}})
	if got := listed(other); slices.Contains(got, routesMinion) {
		t.Errorf("a second engine lists the withheld minion: %v", got)
	}
	if held, err := other.Withheld(routesMinion); !held || err != nil {
		t.Errorf("Withheld = %v, %v", held, err)
	}

	// Published: listed again, and the gateway is told at once.
	calls := len(fx.gw.calls())
	if err := fx.e.Publish(ctx, routesMinion); err != nil {
		t.Fatal(err)
	}
	if c := fx.gw.calls(); len(c) != calls+1 || c[len(c)-1] != routesMinion {
		t.Errorf("Changed calls after Publish: %v", c)
	}
	if got := minionsOf(fx.gw.last()); !slices.Contains(got, routesMinion) {
		t.Errorf("the table after Publish lacks %s: %v", routesMinion, got)
	}
	if held, err := fx.e.Withheld(routesMinion); held || err != nil {
		t.Errorf("Withheld after Publish = %v, %v", held, err)
	}
	if err := fx.e.Publish(ctx, routesMinion); err != nil {
		t.Errorf("a second Publish: %v", err)
	}

	// Withheld again on a running minion: its route goes at once.
	if err := fx.e.Withhold(ctx, routesMinion); err != nil {
		t.Fatal(err)
	}
	if got := minionsOf(fx.gw.last()); slices.Contains(got, routesMinion) {
		t.Errorf("the table after Withhold still has %s: %v", routesMinion, got)
	}

	// A mark that cannot be read (its folder is a file): withheld.
	odd := t.TempDir()
	if err := os.WriteFile(filepath.Join(odd, routesMinion), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if held, err := (&minions.StateStore{Dir: odd}).Withheld(routesMinion); !held || err == nil {
		t.Errorf("unreadable mark: Withheld = %v, %v; want true and an error", held, err)
	}
	if err := fx.e.Withhold(ctx, "nosuchminion"); err == nil {
		t.Error("Withhold of an unknown minion: no error")
	}
}
