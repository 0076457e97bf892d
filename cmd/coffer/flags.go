package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// The commands other than `coffer cli` parse their flags with the standard
// library's flag package, which takes -name and --name alike. These two
// give them the style of `coffer cli` (cobra's): flags written --name in
// usage and errors, and an error said once, by main, with where to look.

// parseFlags parses args into fs. A bad flag is one error that names the
// flag as --name and says how to list the flags; -h or --help prints the
// usage and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(out, "usage: coffer %s [flags]\n\n", fs.Name())
			printFlags(fs)
		}
		return err
	case err != nil:
		return fmt.Errorf("%s (coffer %s --help lists its flags)", doubleDash(err.Error()), fs.Name())
	}
	return nil
}

// doubleDash rewrites the flag package's messages, which name a flag -name,
// with --name and in plainer words.
func doubleDash(msg string) string {
	for _, r := range [][2]string{
		{"flag provided but not defined: -", "unknown flag --"},
		{"flag needs an argument: -", "flag needs an argument: --"},
		{" for flag -", " for flag --"},
	} {
		msg = strings.Replace(msg, r[0], r[1], 1)
	}
	return msg
}

// printFlags is flag.PrintDefaults with --name.
func printFlags(fs *flag.FlagSet) {
	w := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			if name == "string" {
				line += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				line += fmt.Sprintf(" (default %v)", f.DefValue)
			}
		}
		fmt.Fprintln(w, line)
	})
}
