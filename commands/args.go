package commands

import (
	"slices"
	"strings"
)

// Flags splits args into positional words and --flags. valued lists the
// flags that take a value (--tail 50 or --tail=50); others are switches.
// An unknown flag is a UserError naming the ones the command takes.
func Flags(args []string, valued []string, switches ...string) (pos []string, flags map[string]string, err error) {
	flags = map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") || a == "--" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch {
		case slices.Contains(valued, name):
			if !hasVal {
				if i+1 >= len(args) {
					return nil, nil, Errorf("`--%s` needs a value.", name)
				}
				i++
				val = args[i]
			}
			flags[name] = val
		case slices.Contains(switches, name) && !hasVal:
			flags[name] = "true"
		default:
			known := append(append([]string(nil), valued...), switches...)
			if len(known) == 0 {
				return nil, nil, Errorf("This command takes no `--%s` option.", name)
			}
			return nil, nil, Errorf("Unknown option `--%s`; this command takes --%s.", name, strings.Join(known, ", --"))
		}
	}
	return pos, flags, nil
}
