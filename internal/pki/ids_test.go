package pki

import (
	"net/url"
	"strings"
	"testing"
)

func TestNodeURI(t *testing.T) {
	u, err := NodeURI("cluster-abc123", "hsm-x9")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u.String(), "coffer://cluster/cluster-abc123/hsm/hsm-x9"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	c, h, err := parseNodeURIRefusing(u)
	if err != nil || c != "cluster-abc123" || h != "hsm-x9" {
		t.Fatalf("parseNodeURIRefusing = %q, %q, %v", c, h, err)
	}
	for _, bad := range [][2]string{{"", "hsm-1"}, {"cluster-1", ""}, {"cluster/1", "hsm-1"}, {"-cluster", "hsm-1"},
		{"cluster-1", "hsm 1"}, {"cluster-1", "hsm-é"}, {strings.Repeat("c", maxIDLen+1), "hsm-1"}} {
		_, err := NodeURI(bad[0], bad[1])
		wantReason(t, err, ErrInvalidID)
	}
}

func TestParseNodeURIRefuses(t *testing.T) {
	for _, s := range []string{
		"https://cluster/cluster-1/hsm/hsm-1",
		"coffer://other/cluster-1/hsm/hsm-1",
		"coffer://cluster:1/cluster-1/hsm/hsm-1",
		"coffer://u@cluster/cluster-1/hsm/hsm-1",
		"coffer://cluster/cluster-1/hsm/hsm-1?x=1",
		"coffer://cluster/cluster-1/hsm/hsm-1?",
		"coffer://cluster/cluster-1/hsm/hsm-1#f",
		"coffer://cluster/cluster-1/node/hsm-1",
		"coffer://cluster/cluster-1/hsm/hsm-1/",
		"coffer://cluster/cluster-1/hsm",
		"coffer://cluster/cluster%2D1/hsm/hsm-1",
		"coffer://cluster//hsm/hsm-1",
		"coffer:cluster/cluster-1/hsm/hsm-1",
	} {
		t.Run(s, func(t *testing.T) {
			u, err := url.Parse(s)
			if err != nil {
				t.Skipf("url.Parse refuses it already: %v", err)
			}
			_, _, err = parseNodeURIRefusing(u)
			wantReason(t, err, ErrNoNodeIdentity)
		})
	}
}

// FuzzParseNodeURI: whatever parseNodeURI accepts is exactly what NodeURI
// makes from the ids it returns.
func FuzzParseNodeURI(f *testing.F) {
	f.Add("coffer://cluster/cluster-1/hsm/hsm-1")
	f.Add("coffer://cluster/cluster%2D1/hsm/hsm-1")
	f.Add("coffer://cluster/a/hsm/b?")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		c, h, err := parseNodeURIRefusing(u)
		if err != nil {
			return
		}
		again, err := NodeURI(c, h)
		if err != nil {
			t.Fatalf("accepted %q but NodeURI(%q, %q): %v", s, c, h, err)
		}
		if again.String() != u.String() {
			t.Fatalf("accepted %q, NodeURI gives %q", u.String(), again.String())
		}
	})
}

// parseNodeURIRefusing is parseNodeURI with its refusal as nodeIdentity
// makes it (ErrNoNodeIdentity).
func parseNodeURIRefusing(u *url.URL) (clusterID, hsmID string, err error) {
	c, h, err := parseNodeURI(u)
	if err != nil {
		return "", "", refuse(ErrNoNodeIdentity, "node URI", nil, err)
	}
	return c, h, nil
}
