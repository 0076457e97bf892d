package user

import (
	"slices"
	"testing"
)

func TestListTable(t *testing.T) {
	l := List{Users: []Entry{
		{Username: "admin", Role: "admin", Quorum: []Strategy{{Strategy: "token-sign", Status: "enabled"}}},
		{Username: "alice", Role: "crypto-user", Locked: true, LoginFailures: 5, Quorum: []Strategy{}, OwnedKeys: 2},
	}}
	header, rows := l.Table()
	if len(header) != 7 {
		t.Fatalf("header %q", header)
	}
	if want := []string{"admin", "admin", "false", "0", "token-sign", "0", "0"}; !slices.Equal(rows[0], want) {
		t.Errorf("row %q", rows[0])
	}
	if want := []string{"alice", "crypto-user", "true", "5", "-", "2", "0"}; !slices.Equal(rows[1], want) {
		t.Errorf("row %q", rows[1])
	}
}
