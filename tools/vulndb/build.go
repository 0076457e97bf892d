package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config says where Build reads OSV entries and writes the database.
type Config struct {
	OSVDir  string // directory of GO-*.json OSV entries (the module's data/osv)
	OutDir  string // database directory; created, must not be half-written by anyone else
	Version string // optional vulndb module version; a pseudo-version's time dates the database
}

// Validate reports a Config that Build cannot use.
func (c Config) Validate() error {
	if c.OSVDir == "" {
		return errors.New("config: OSVDir is empty")
	}
	if c.OutDir == "" {
		return errors.New("config: OutDir is empty")
	}
	return nil
}

// Stats describes a built database.
type Stats struct {
	Entries  int
	Modules  int
	Modified time.Time // as written to index/db.json
	Existing bool      // OutDir already held a database; nothing was written
}

// ErrBadEntry reports an OSV file that cannot go into the database.
var ErrBadEntry = errors.New("bad OSV entry")

// osvEntry is the part of an OSV entry that the indexes need. The entry
// itself is copied through as raw JSON, so fields unknown here survive.
type osvEntry struct {
	ID        string     `json:"id"`
	Modified  time.Time  `json:"modified"`
	Published time.Time  `json:"published"`
	Withdrawn *time.Time `json:"withdrawn"`
	Aliases   []string   `json:"aliases"`
	Affected  []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []osvRange `json:"ranges"`
	} `json:"affected"`
}

type osvRange struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced string `json:"introduced"`
		Fixed      string `json:"fixed"`
	} `json:"events"`
}

// The index records, with govulncheck's field names and order.
type dbMeta struct {
	Modified time.Time `json:"modified"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type vulnMeta struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

// idPattern is the file name stem an entry must have; it also keeps IDs
// from naming paths outside ID/.
var idPattern = regexp.MustCompile(`^GO-[0-9]{4}-[0-9]{4,}$`)

// pseudoTime matches the timestamp in a pseudo-version such as
// v0.0.0-20261105234957-e22db6528018.
var pseudoTime = regexp.MustCompile(`-(?:0\.)?([0-9]{14})-[0-9a-f]{12}$`)

// Build writes the database for cfg. If cfg.OutDir already holds one
// (index/modules.json exists) it returns Stats{Existing: true}.
func Build(ctx context.Context, cfg Config) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	if isDatabase(cfg.OutDir) {
		return Stats{Existing: true}, nil
	}
	var snapshot time.Time
	if m := pseudoTime.FindStringSubmatch(cfg.Version); m != nil {
		t, err := time.Parse("20060102150405", m[1])
		if err != nil {
			return Stats{}, fmt.Errorf("version %q: %w", cfg.Version, err)
		}
		snapshot = t.UTC()
	}

	names, err := filepath.Glob(filepath.Join(cfg.OSVDir, "GO-*.json"))
	if err != nil {
		return Stats{}, fmt.Errorf("list %s: %w", cfg.OSVDir, err)
	}
	if len(names) == 0 {
		return Stats{}, fmt.Errorf("no GO-*.json entries in %s: %w", cfg.OSVDir, fs.ErrNotExist)
	}

	parent := filepath.Dir(filepath.Clean(cfg.OutDir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Stats{}, fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, ".vulndb-build-*")
	if err != nil {
		return Stats{}, fmt.Errorf("create build directory: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed into place

	st, err := write(ctx, tmp, names, snapshot)
	if err != nil {
		return Stats{}, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Stats{}, fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, cfg.OutDir); err != nil {
		if isDatabase(cfg.OutDir) {
			// Someone else finished the same build first.
			return Stats{Existing: true}, nil
		}
		return Stats{}, fmt.Errorf("move database into place: %w", err)
	}
	return st, nil
}

func isDatabase(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "index", "modules.json"))
	return err == nil
}

// write reads every entry named in names and writes ID/ and index/ under dir.
func write(ctx context.Context, dir string, names []string, snapshot time.Time) (Stats, error) {
	idDir := filepath.Join(dir, "ID")
	indexDir := filepath.Join(dir, "index")
	for _, d := range []string{idDir, indexDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return Stats{}, fmt.Errorf("create %s: %w", d, err)
		}
	}

	db := dbMeta{Modified: snapshot}
	modules := map[string]*moduleMeta{}
	vulns := make([]vulnMeta, 0, len(names))
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return Stats{}, fmt.Errorf("build interrupted: %w", err)
		}
		e, raw, err := readEntry(name, snapshot)
		if err != nil {
			return Stats{}, err
		}
		if err := os.WriteFile(filepath.Join(idDir, e.ID+".json"), raw, 0o644); err != nil {
			return Stats{}, fmt.Errorf("write entry %s: %w", e.ID, err)
		}
		if e.Modified.After(db.Modified) {
			db.Modified = e.Modified
		}
		vulns = append(vulns, vulnMeta{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
		for _, a := range e.Affected {
			m := modules[a.Package.Name]
			if m == nil {
				m = &moduleMeta{Path: a.Package.Name, Vulns: []moduleVuln{}}
				modules[a.Package.Name] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified, Fixed: latestFixed(a.Ranges)})
		}
	}

	mods := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		slices.SortStableFunc(m.Vulns, func(a, b moduleVuln) int { return strings.Compare(a.ID, b.ID) })
		mods = append(mods, m)
	}
	slices.SortFunc(mods, func(a, b *moduleMeta) int { return strings.Compare(a.Path, b.Path) })
	slices.SortFunc(vulns, func(a, b vulnMeta) int { return strings.Compare(a.ID, b.ID) })

	for _, f := range []struct {
		name string
		v    any
	}{{"db.json", db}, {"modules.json", mods}, {"vulns.json", vulns}} {
		b, err := json.Marshal(f.v)
		if err != nil {
			return Stats{}, fmt.Errorf("encode index/%s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(indexDir, f.name), b, 0o644); err != nil {
			return Stats{}, fmt.Errorf("write index/%s: %w", f.name, err)
		}
	}
	return Stats{Entries: len(vulns), Modules: len(mods), Modified: db.Modified}, nil
}

// readEntry parses one OSV file, fills in a zero modified time (see the
// package comment), and returns the entry as compact JSON.
func readEntry(name string, snapshot time.Time) (osvEntry, []byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return osvEntry{}, nil, fmt.Errorf("read entry: %w", err)
	}
	var e osvEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return osvEntry{}, nil, fmt.Errorf("%s: %w: %w", name, ErrBadEntry, err)
	}
	base := filepath.Base(name)
	if !idPattern.MatchString(e.ID) || base != e.ID+".json" {
		return osvEntry{}, nil, fmt.Errorf("%s: %w: id %q does not match the file name", name, ErrBadEntry, e.ID)
	}
	if len(e.Affected) == 0 {
		return osvEntry{}, nil, fmt.Errorf("%s: %w: no affected modules", name, ErrBadEntry)
	}
	for _, a := range e.Affected {
		if a.Package.Name == "" {
			return osvEntry{}, nil, fmt.Errorf("%s: %w: affected package without a name", name, ErrBadEntry)
		}
	}

	if e.Modified.IsZero() {
		e.Modified = e.Published
		if e.Withdrawn != nil && e.Withdrawn.After(e.Modified) {
			e.Modified = *e.Withdrawn
		}
		if e.Modified.IsZero() {
			e.Modified = snapshot
		}
		e.Modified = e.Modified.UTC()
		// Replace just that field; every other field keeps its value.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil {
			return osvEntry{}, nil, fmt.Errorf("%s: %w: %w", name, ErrBadEntry, err)
		}
		mod, err := json.Marshal(e.Modified)
		if err != nil {
			return osvEntry{}, nil, fmt.Errorf("%s: encode modified time: %w", name, err)
		}
		fields["modified"] = mod
		if b, err = json.Marshal(fields); err != nil {
			return osvEntry{}, nil, fmt.Errorf("%s: encode entry: %w", name, err)
		}
		return e, b, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return osvEntry{}, nil, fmt.Errorf("%s: %w: %w", name, ErrBadEntry, err)
	}
	return e, buf.Bytes(), nil
}
