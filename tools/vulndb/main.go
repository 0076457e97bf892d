// Command vulndb turns a copy of the golang.org/x/vulndb module, as the Go
// module proxy serves it, into an offline Go vulnerability database that
// `govulncheck -db file:///abs/dir` reads, so that scripts/vulncheck.sh needs
// nothing but the module proxy.
//
// It reads <src>/data/osv/GO-*.json and writes the "v1" schema
// (https://go.dev/security/vuln/database#api) as govulncheck's file source
// expects it, uncompressed:
//
//	index/db.json       {"modified": <latest entry modification>}
//	index/modules.json  [{"path", "vulns": [{"id", "modified", "fixed"}]}], sorted
//	index/vulns.json    [{"id", "modified", "aliases"}], sorted (not read by govulncheck)
//	ID/<GO-ID>.json     one OSV entry each
//
// The module's OSV files carry a zero "modified" time: the upstream generator
// fills it in from git history, which a module zip does not have (most
// entries carry a zero "published" time too). Here an entry's modified time
// becomes the later of its "published" and "withdrawn" times or, when both
// are zero, the commit time of the pseudo-version passed with -version: the
// entry was last changed no later than that. index/db.json holds the newest
// of these, which is that commit time.
//
// The output directory is built beside its final path and renamed into
// place, so a reader never sees a half-written database. An existing
// database at -out is left as it is.
//
// Usage:
//
//	vulndb -src $(go mod download -json golang.org/x/vulndb@V | .Dir) -out DIR [-version V]
//
// It uses only the standard library and must not import anything else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "vulndb:", err)
		}
		os.Exit(2)
	}
}

// run parses args and builds the database.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vulndb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := fs.String("src", "", "directory of the golang.org/x/vulndb module (holding data/osv)")
	out := fs.String("out", "", "directory to create the database in")
	version := fs.String("version", "", "the vulndb module's version; a pseudo-version's time dates index/db.json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *src == "" || *out == "" {
		return errors.New("both -src and -out are required")
	}
	cfg := Config{
		OSVDir:  filepath.Join(*src, "data", "osv"),
		OutDir:  *out,
		Version: *version,
	}
	st, err := Build(ctx, cfg)
	if err != nil {
		return err
	}
	if st.Existing {
		fmt.Fprintf(stdout, "vulndb: %s already holds a database\n", cfg.OutDir)
		return nil
	}
	fmt.Fprintf(stdout, "vulndb: wrote %d entries for %d modules to %s (modified %s)\n",
		st.Entries, st.Modules, cfg.OutDir, st.Modified.Format("2006-01-02T15:04:05Z"))
	return nil
}
