package cluster

import (
	"slices"
	"testing"
)

func TestInfoTable(t *testing.T) {
	in := Info{HSMs: []HSM{
		{Address: "127.0.0.11:1", HSMID: "hsm-1", State: StateActive, TokenObjects: 3, Sessions: 1,
			Peers: []Peer{{NodeID: 2, Connected: true, SyncLagMS: 2.5}}},
		{Address: "127.0.0.12:1", State: StateUnreachable, Peers: []Peer{}},
	}}
	header, rows := in.Table()
	if len(header) != 7 || len(rows) != 2 {
		t.Fatalf("%q %q", header, rows)
	}
	if want := []string{"127.0.0.11:1", "hsm-1", "ACTIVE", "3", "1", "1/1", "2.5ms"}; !slices.Equal(rows[0], want) {
		t.Errorf("row %q, want %q", rows[0], want)
	}
	if rows[1][2] != StateUnreachable || rows[1][5] != "0/0" {
		t.Errorf("row %q", rows[1])
	}
}
