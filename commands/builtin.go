package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// errAlreadyReplied tells finish that the handler posted its own reply.
var errAlreadyReplied = errors.New("already replied")

func (rt *Router) builtins() []Definition {
	return []Definition{
		{
			Name: "help", Args: "[command]", Summary: "list the commands, or explain one",
			Run: rt.help,
		},
		{
			Name: "whoami", Summary: "show your permission level",
			Run: func(_ context.Context, r *Request) (string, error) {
				return fmt.Sprintf("You are @%s, with %s rights.", r.Message.User.Username, r.Level), nil
			},
		},
		{
			Name: "version", Summary: "show which Summoner this is",
			Run: func(context.Context, *Request) (string, error) {
				return "Summoner " + rt.o.Version, nil
			},
		},
		{
			Name: "ping", Summary: "check that I am listening",
			Run: func(context.Context, *Request) (string, error) { return "pong", nil },
		},
		{
			Name: "confirm", Args: "<code>", Summary: "go ahead with a command that asked for confirmation",
			// The confirmed command runs under its own deadline.
			Timeout: 24 * time.Hour,
			Run:     rt.confirm,
		},
	}
}

func (rt *Router) help(_ context.Context, r *Request) (string, error) {
	if len(r.Args) > 0 {
		def, ok := rt.reg.Lookup(strings.ToLower(r.Args[0]))
		if !ok {
			return "", rt.unknown(r.Args[0])
		}
		return helpFor(def), nil
	}
	var b strings.Builder
	b.WriteString("Commands (type `help <command>` for details):\n")
	for _, d := range rt.reg.All() {
		fmt.Fprintf(&b, "- `%s`: %s", d.Usage(), d.Summary)
		if d.Level > Everyone {
			fmt.Fprintf(&b, " (%s)", d.Level)
		}
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n"), nil
}

func helpFor(d *Definition) string {
	var b strings.Builder
	fmt.Fprintf(&b, "`%s`: %s", d.Usage(), d.Summary)
	if d.Help != "" {
		b.WriteString("\n" + d.Help)
	}
	fmt.Fprintf(&b, "\nWho may run it: %s.", map[Level]string{
		Everyone: "everyone", Operator: "operators and admins", Admin: "admins",
	}[d.Level])
	if d.Mutating {
		b.WriteString(" It changes things, so some channels may not accept it.")
	}
	if d.Confirm != nil {
		b.WriteString(" It asks for confirmation first.")
	}
	return b.String()
}
