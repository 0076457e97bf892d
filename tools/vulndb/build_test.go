package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const snapshotVersion = "v0.0.0-20261105234957-e22db6528018"

// Entries in the shape of the vulndb module's data/osv: zero "modified", and
// mostly zero "published".
var testEntries = map[string]string{
	"GO-2021-0113": `{
  "schema_version": "1.3.1",
  "id": "GO-2021-0113",
  "modified": "0001-01-01T00:00:00Z",
  "published": "2021-10-06T17:51:21Z",
  "aliases": ["CVE-2021-38561", "GHSA-ppp9-7jff-5vj2"],
  "summary": "Out-of-bounds read in golang.org/x/text/language",
  "details": "d",
  "affected": [{
    "package": {"name": "golang.org/x/text", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.3.7"}]}],
    "ecosystem_specific": {"imports": [{"path": "golang.org/x/text/language", "symbols": ["Parse"]}]}
  }],
  "database_specific": {"url": "https://pkg.go.dev/vuln/GO-2021-0113", "review_status": "REVIEWED"},
  "x_unknown": {"kept": true}
}`,
	"GO-2022-0229": `{
  "id": "GO-2022-0229",
  "modified": "0001-01-01T00:00:00Z",
  "published": "0001-01-01T00:00:00Z",
  "details": "d",
  "affected": [
    {"package": {"name": "stdlib", "ecosystem": "Go"},
     "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.12.16"}, {"introduced": "1.13.0"}, {"fixed": "1.13.7"}]}]},
    {"package": {"name": "golang.org/x/crypto", "ecosystem": "Go"},
     "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.0.0-20200124225646-8b5121be2f68"}]}]}
  ]
}`,
	"GO-2023-1234": `{
  "id": "GO-2023-1234",
  "modified": "0001-01-01T00:00:00Z",
  "published": "2023-01-02T03:04:05Z",
  "withdrawn": "2023-06-07T08:09:10Z",
  "details": "d",
  "affected": [{"package": {"name": "golang.org/x/text", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.3.0"}, {"introduced": "0.4.0"}]}]}]
}`,
	"GO-2024-0001": `{
  "id": "GO-2024-0001",
  "modified": "2024-02-03T04:05:06Z",
  "published": "2024-01-01T00:00:00Z",
  "details": "d",
  "affected": [{"package": {"name": "example.com/m", "ecosystem": "Go"}}]
}`,
}

// writeSrc lays out entries as the vulndb module does and returns the module directory.
func writeSrc(t *testing.T, entries map[string]string) string {
	t.Helper()
	src := t.TempDir()
	osv := filepath.Join(src, "data", "osv")
	if err := os.MkdirAll(osv, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range entries {
		if err := os.WriteFile(filepath.Join(osv, name+".json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Files that are not entries are ignored.
	if err := os.WriteFile(filepath.Join(osv, "README.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestBuild(t *testing.T) {
	src := writeSrc(t, testEntries)
	out := filepath.Join(t.TempDir(), "cache", "db")
	st, err := Build(t.Context(), Config{OSVDir: filepath.Join(src, "data", "osv"), OutDir: out, Version: snapshotVersion})
	if err != nil {
		t.Fatal(err)
	}
	snap := mustTime(t, "2026-11-05T23:49:57Z")
	want := Stats{Entries: 4, Modules: 4, Modified: snap}
	if st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}

	t.Run("db.json", func(t *testing.T) {
		var db dbMeta
		readJSON(t, filepath.Join(out, "index", "db.json"), &db)
		if !db.Modified.Equal(snap) {
			t.Errorf("modified = %v, want %v", db.Modified, snap)
		}
	})

	t.Run("modules.json", func(t *testing.T) {
		var got []moduleMeta
		readJSON(t, filepath.Join(out, "index", "modules.json"), &got)
		want := []moduleMeta{
			{Path: "example.com/m", Vulns: []moduleVuln{{ID: "GO-2024-0001", Modified: mustTime(t, "2024-02-03T04:05:06Z")}}},
			{Path: "golang.org/x/crypto", Vulns: []moduleVuln{{ID: "GO-2022-0229", Modified: snap, Fixed: "0.0.0-20200124225646-8b5121be2f68"}}},
			{Path: "golang.org/x/text", Vulns: []moduleVuln{
				{ID: "GO-2021-0113", Modified: mustTime(t, "2021-10-06T17:51:21Z"), Fixed: "0.3.7"},
				{ID: "GO-2023-1234", Modified: mustTime(t, "2023-06-07T08:09:10Z")},
			}},
			{Path: "stdlib", Vulns: []moduleVuln{{ID: "GO-2022-0229", Modified: snap, Fixed: "1.13.7"}}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("modules.json =\n%+v\nwant\n%+v", got, want)
		}
	})

	t.Run("vulns.json", func(t *testing.T) {
		var got []vulnMeta
		readJSON(t, filepath.Join(out, "index", "vulns.json"), &got)
		var ids []string
		for _, v := range got {
			ids = append(ids, v.ID)
		}
		if want := []string{"GO-2021-0113", "GO-2022-0229", "GO-2023-1234", "GO-2024-0001"}; !reflect.DeepEqual(ids, want) {
			t.Errorf("ids = %v, want %v", ids, want)
		}
		if want := []string{"CVE-2021-38561", "GHSA-ppp9-7jff-5vj2"}; !reflect.DeepEqual(got[0].Aliases, want) {
			t.Errorf("aliases = %v, want %v", got[0].Aliases, want)
		}
	})

	t.Run("entries keep every field but modified", func(t *testing.T) {
		for id, body := range testEntries {
			var orig, got map[string]any
			if err := json.Unmarshal([]byte(body), &orig); err != nil {
				t.Fatal(err)
			}
			readJSON(t, filepath.Join(out, "ID", id+".json"), &got)
			gotMod, _ := got["modified"].(string)
			if gotMod == "" || strings.HasPrefix(gotMod, "0001-") {
				t.Errorf("%s: modified = %q, want a real time", id, gotMod)
			}
			delete(orig, "modified")
			delete(got, "modified")
			if !reflect.DeepEqual(got, orig) {
				t.Errorf("%s: entry changed:\n got %v\nwant %v", id, got, orig)
			}
		}
	})

	t.Run("nothing left beside the database", func(t *testing.T) {
		ents, err := os.ReadDir(filepath.Dir(out))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "db" {
			t.Errorf("cache directory holds %v, want only db", ents)
		}
		fi, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o755 {
			t.Errorf("database directory mode = %v, want 0755", perm)
		}
	})

	t.Run("existing database is kept", func(t *testing.T) {
		marker := filepath.Join(out, "index", "db.json")
		if err := os.WriteFile(marker, []byte(`{"modified":"2000-01-01T00:00:00Z"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := Build(t.Context(), Config{OSVDir: filepath.Join(src, "data", "osv"), OutDir: out})
		if err != nil {
			t.Fatal(err)
		}
		if !st.Existing {
			t.Errorf("Stats = %+v, want Existing", st)
		}
		b, err := os.ReadFile(marker)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("2000-01-01")) {
			t.Errorf("existing database was rewritten: %s", b)
		}
	})
}

func TestBuildWithoutVersion(t *testing.T) {
	// Without a pseudo-version, db.json dates from the newest entry time known.
	src := writeSrc(t, testEntries)
	out := filepath.Join(t.TempDir(), "db")
	st, err := Build(t.Context(), Config{OSVDir: filepath.Join(src, "data", "osv"), OutDir: out, Version: "v1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if want := mustTime(t, "2024-02-03T04:05:06Z"); !st.Modified.Equal(want) {
		t.Errorf("Modified = %v, want %v", st.Modified, want)
	}
}

func TestBuildErrors(t *testing.T) {
	valid := testEntries["GO-2024-0001"]
	tests := []struct {
		name    string
		entries map[string]string
		cfg     func(src, out string) Config
		ctx     func(t *testing.T) context.Context
		want    error
	}{
		{
			name:    "id does not match file name",
			entries: map[string]string{"GO-2024-0002": valid},
			want:    ErrBadEntry,
		},
		{
			name:    "id naming another path",
			entries: map[string]string{"GO-2024-0001": strings.Replace(valid, `"GO-2024-0001"`, `"../GO-2024-0001"`, 1)},
			want:    ErrBadEntry,
		},
		{
			name:    "not JSON",
			entries: map[string]string{"GO-2024-0001": "{"},
			want:    ErrBadEntry,
		},
		{
			name:    "no affected modules",
			entries: map[string]string{"GO-2024-0001": `{"id": "GO-2024-0001", "affected": []}`},
			want:    ErrBadEntry,
		},
		{
			name:    "affected package without a name",
			entries: map[string]string{"GO-2024-0001": `{"id": "GO-2024-0001", "affected": [{"package": {}}]}`},
			want:    ErrBadEntry,
		},
		{
			name:    "no entries",
			entries: map[string]string{},
			want:    fs.ErrNotExist,
		},
		{
			name:    "canceled",
			entries: testEntries,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
			want: context.Canceled,
		},
		{
			name:    "empty config",
			entries: testEntries,
			cfg:     func(string, string) Config { return Config{} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := writeSrc(t, tt.entries)
			out := filepath.Join(t.TempDir(), "db")
			cfg := Config{OSVDir: filepath.Join(src, "data", "osv"), OutDir: out}
			if tt.cfg != nil {
				cfg = tt.cfg(src, out)
			}
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(t)
			}
			_, err := Build(ctx, cfg)
			if err == nil {
				t.Fatal("Build succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Build error = %v, want %v", err, tt.want)
			}
			if _, serr := os.Stat(out); !errors.Is(serr, fs.ErrNotExist) {
				t.Errorf("failed build left %s behind (stat: %v)", out, serr)
			}
			ents, _ := os.ReadDir(filepath.Dir(out))
			if len(ents) != 0 {
				t.Errorf("failed build left %v behind", ents)
			}
		})
	}
}

func TestRun(t *testing.T) {
	src := writeSrc(t, testEntries)
	tests := []struct {
		name    string
		args    func(out string) []string
		wantErr bool
		wantOut string
	}{
		{
			name:    "builds",
			args:    func(out string) []string { return []string{"-src", src, "-out", out, "-version", snapshotVersion} },
			wantOut: "wrote 4 entries for 4 modules",
		},
		{name: "missing -out", args: func(string) []string { return []string{"-src", src} }, wantErr: true},
		{name: "missing -src", args: func(out string) []string { return []string{"-out", out} }, wantErr: true},
		{name: "extra argument", args: func(out string) []string { return []string{"-src", src, "-out", out, "x"} }, wantErr: true},
		{name: "unknown flag", args: func(string) []string { return []string{"-nope"} }, wantErr: true},
		{name: "src without data/osv", args: func(out string) []string { return []string{"-src", t.TempDir(), "-out", out} }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "db")
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args(out), &stdout, &stderr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("run error = %v, wantErr %v (stderr %q)", err, tt.wantErr, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tt.wantOut)
			}
		})
	}
}
