package main

import (
	"errors"
	"testing"
)

func TestParseSemver(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		core [3]string
		pre  int
	}{
		{in: "1.2.3", ok: true, core: [3]string{"1", "2", "3"}},
		{in: "v1.2.3", ok: true, core: [3]string{"1", "2", "3"}},
		{in: "0.0.0-20200124225646-8b5121be2f68", ok: true, core: [3]string{"0", "0", "0"}, pre: 1},
		{in: "1.11.0-alpha.0.0.20260225185322-738bad662b20", ok: true, core: [3]string{"1", "11", "0"}, pre: 4},
		{in: "10.11.0-rc1+incompatible", ok: true, core: [3]string{"10", "11", "0"}, pre: 1},
		{in: "1.26.0-0", ok: true, core: [3]string{"1", "26", "0"}, pre: 1},
		{in: "", ok: false},
		{in: "0", ok: false},
		{in: "1.2", ok: false},
		{in: "1.2.3.4", ok: false},
		{in: "01.2.3", ok: false},
		{in: "1.2.x", ok: false},
		{in: "1.2.3-", ok: false},
		{in: "1.2.3-01", ok: false},
		{in: "1.2.3-a..b", ok: false},
		{in: "1.2.3+", ok: false},
		{in: "1.2.3-a_b", ok: false},
		{in: "go1.2.3", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := parseSemver(tt.in)
			if !tt.ok {
				if !errors.Is(err, errBadVersion) {
					t.Fatalf("parseSemver(%q) error = %v, want errBadVersion", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSemver(%q): %v", tt.in, err)
			}
			if v.core != tt.core || len(v.pre) != tt.pre {
				t.Errorf("parseSemver(%q) = %+v, want core %v and %d pre-release identifiers", tt.in, v, tt.core, tt.pre)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	// Each version has strictly lower precedence than the next (SemVer 2.0.0 §11,
	// plus cases from the vulnerability database).
	ordered := []string{
		"0.0.0-20200124225646-8b5121be2f68",
		"0.0.0-20210101000000-aaaaaaaaaaaa",
		"0.9.0",
		"1.0.0-0",
		"1.0.0-alpha",
		"1.0.0-alpha.1",
		"1.0.0-alpha.beta",
		"1.0.0-beta",
		"1.0.0-beta.2",
		"1.0.0-beta.11",
		"1.0.0-rc.1",
		"1.0.0",
		"1.2.0",
		"1.9.0",
		"1.10.0",
		"1.10.2",
		"1.10.10",
		"10.0.0",
		"99999999999999999999.0.0",
	}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			t.Run(a+"_vs_"+b, func(t *testing.T) {
				va, err := parseSemver(a)
				if err != nil {
					t.Fatal(err)
				}
				vb, err := parseSemver(b)
				if err != nil {
					t.Fatal(err)
				}
				if got := va.compare(vb); got != want {
					t.Errorf("compare(%s, %s) = %d, want %d", a, b, got, want)
				}
			})
		}
	}
	t.Run("build metadata ignored", func(t *testing.T) {
		a, _ := parseSemver("11.5.0+incompatible")
		b, _ := parseSemver("11.5.0")
		if got := a.compare(b); got != 0 {
			t.Errorf("compare = %d, want 0", got)
		}
	})
}

func FuzzCompare(f *testing.F) {
	f.Add("1.0.0-alpha.1", "1.0.0-alpha.beta")
	f.Add("1.10.0", "1.9.0+x")
	f.Add("0.0.0-20200124225646-8b5121be2f68", "0.0.0-0")
	f.Fuzz(func(t *testing.T, a, b string) {
		va, errA := parseSemver(a)
		vb, errB := parseSemver(b)
		if errA != nil || errB != nil {
			return
		}
		ab, ba := va.compare(vb), vb.compare(va)
		if ab != -ba {
			t.Fatalf("compare(%q, %q) = %d but compare(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if va.compare(va) != 0 {
			t.Fatalf("compare(%q, itself) != 0", a)
		}
	})
}

type ev struct{ introduced, fixed string }

func semverRange(typ string, evs ...ev) osvRange {
	r := osvRange{Type: typ}
	for _, e := range evs {
		r.Events = append(r.Events, struct {
			Introduced string `json:"introduced"`
			Fixed      string `json:"fixed"`
		}{e.introduced, e.fixed})
	}
	return r
}

func TestLatestFixed(t *testing.T) {
	tests := []struct {
		name   string
		ranges []osvRange
		want   string
	}{
		{name: "no ranges", want: ""},
		{name: "no fix", ranges: []osvRange{semverRange("SEMVER", ev{introduced: "0"})}, want: ""},
		{name: "one fix", ranges: []osvRange{semverRange("SEMVER", ev{introduced: "0"}, ev{fixed: "0.3.7"})}, want: "0.3.7"},
		{
			name: "latest of several, compared as versions not strings",
			ranges: []osvRange{semverRange("SEMVER",
				ev{introduced: "0"}, ev{fixed: "1.9.5"},
				ev{introduced: "1.10.0"}, ev{fixed: "1.10.2"})},
			want: "1.10.2",
		},
		{
			name: "across ranges",
			ranges: []osvRange{
				semverRange("SEMVER", ev{introduced: "0"}, ev{fixed: "2.0.3"}),
				semverRange("SEMVER", ev{introduced: "0"}, ev{fixed: "2.0.4"}),
			},
			want: "2.0.4",
		},
		{
			name:   "re-introduced after the fix",
			ranges: []osvRange{semverRange("SEMVER", ev{introduced: "0"}, ev{fixed: "1.5.0"}, ev{introduced: "2.0.0"})},
			want:   "",
		},
		{
			name:   "events out of order",
			ranges: []osvRange{semverRange("SEMVER", ev{fixed: "2.4.0"}, ev{introduced: "2.0.0"}, ev{fixed: "1.5.0"}, ev{introduced: "0"})},
			want:   "2.4.0",
		},
		{
			name:   "pseudo-version fix",
			ranges: []osvRange{semverRange("SEMVER", ev{introduced: "0"}, ev{fixed: "0.0.0-20200124225646-8b5121be2f68"})},
			want:   "0.0.0-20200124225646-8b5121be2f68",
		},
		{
			name:   "pre-release before release",
			ranges: []osvRange{semverRange("SEMVER", ev{introduced: "0"}, ev{fixed: "1.2.0-rc.1"}, ev{introduced: "1.2.0"}, ev{fixed: "1.2.1"})},
			want:   "1.2.1",
		},
		{
			name:   "non-SEMVER ranges ignored",
			ranges: []osvRange{semverRange("ECOSYSTEM", ev{introduced: "0"}, ev{fixed: "9.9.9"})},
			want:   "",
		},
		{
			name:   "unparsable version gives no fix",
			ranges: []osvRange{semverRange("SEMVER", ev{introduced: "0"}, ev{fixed: "1.2"})},
			want:   "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := latestFixed(tt.ranges); got != tt.want {
				t.Errorf("latestFixed = %q, want %q", got, tt.want)
			}
		})
	}
}
