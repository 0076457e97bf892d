package shell

import (
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coffer-hsm/coffer/internal/cli"
)

// complete completes the word that ends at pos in line from the command
// tree under root: subcommands, flags, and the values of flags that declare
// them (roles, hash functions, attribute names...). It returns the new line
// and cursor position, and, when the word stays ambiguous, the candidates to
// show.
func complete(root *cobra.Command, line string, pos int) (string, int, []string) {
	before, after := line[:pos], line[pos:]
	start := strings.LastIndexAny(before, " \t") + 1
	cur := before[start:]
	cands := candidates(root, strings.Fields(before[:start]), cur)
	if len(cands) == 0 {
		return line, pos, nil
	}
	sort.Strings(cands)
	fill := cands[0]
	if len(cands) > 1 {
		fill = commonPrefix(cands)
	} else if !strings.HasSuffix(fill, "=") {
		fill += " "
	}
	if len(fill) <= len(cur) {
		if len(cands) > 1 {
			return line, pos, cands
		}
		return line, pos, nil
	}
	newLine := before[:start] + fill + after
	return newLine, start + len(fill), nil
}

// candidates lists what may follow the words done, starting with cur.
func candidates(root *cobra.Command, done []string, cur string) []string {
	cmd := root
	var valueOf *pflag.Flag
	multi := false
	for i, w := range done {
		switch {
		case valueOf != nil:
			valueOf = nil
		case strings.HasPrefix(w, "-"):
			multi = false
			name, _, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
			f := lookupFlag(cmd, name)
			if f == nil || hasValue || f.NoOptDefVal != "" {
				continue
			}
			if cli.IsMultiValue(name) {
				multi = true
				valueOf = f
				if i < len(done)-1 {
					valueOf = nil // values follow; they are words of their own
				}
				continue
			}
			valueOf = f
		case multi:
			// a value of a multi-value flag
		default:
			if sub := findSub(cmd, w); sub != nil {
				cmd = sub
			}
		}
	}
	var out []string
	add := func(s string) {
		if strings.HasPrefix(s, cur) {
			out = append(out, s)
		}
	}
	switch {
	case strings.HasPrefix(cur, "-"):
		for _, fs := range []*pflag.FlagSet{cmd.LocalFlags(), cmd.InheritedFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if !f.Hidden {
					add("--" + f.Name)
				}
			})
		}
		add("--help")
	case valueOf != nil || multi:
		name := ""
		if valueOf != nil {
			name = valueOf.Name
		} else {
			name = lastFlag(done)
		}
		for _, v := range flagValues(cmd, name, cur) {
			add(v)
		}
	default:
		for _, s := range cmd.Commands() {
			if !s.Hidden && s.IsAvailableCommand() {
				add(s.Name())
			}
		}
		if cmd == root {
			for _, b := range []string{"quit", "exit", "help"} {
				add(b) // the shell's own words, and cobra's help
			}
		}
	}
	return out
}

func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	if f := cmd.LocalFlags().Lookup(name); f != nil {
		return f
	}
	return cmd.InheritedFlags().Lookup(name)
}

func lastFlag(words []string) string {
	for i := len(words) - 1; i >= 0; i-- {
		if strings.HasPrefix(words[i], "--") {
			return strings.TrimPrefix(words[i], "--")
		}
	}
	return ""
}

func findSub(cmd *cobra.Command, name string) *cobra.Command {
	for _, s := range cmd.Commands() {
		if s.Name() == name || s.HasAlias(name) {
			return s
		}
	}
	return nil
}

// flagValues are the values a flag declares, or attribute names for filter
// and attribute flags.
func flagValues(cmd *cobra.Command, name, cur string) []string {
	if strings.HasSuffix(name, "filter") {
		out := []string{"key-reference=0x"}
		for _, d := range cli.AttributeDefs() {
			out = append(out, "attr."+d.Name+"=")
		}
		return out
	}
	if strings.HasSuffix(name, "attributes") {
		var out []string
		for _, d := range cli.AttributeDefs() {
			out = append(out, d.Name+"=")
		}
		return out
	}
	fn, ok := cmd.GetFlagCompletionFunc(name)
	if !ok {
		return nil
	}
	vals, _ := fn(cmd, nil, cur)
	return vals
}

func commonPrefix(s []string) string {
	p := s[0]
	for _, w := range s[1:] {
		for !strings.HasPrefix(w, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}
