package user

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/client"
)

var listed = []client.UserInfo{
	{Username: "admin", Role: "admin", QuorumKey: true},
	{Username: "alice", Role: "crypto-user", Locked: true, Failures: 5, OwnedKeys: 2},
}

// TestList: an admin's list shows lock state, failure counts, quorum and key
// counts; anyone else's shows names and roles only, in JSON and as a table.
func TestList(t *testing.T) {
	tests := []struct {
		name     string
		detail   bool
		header   []string
		rows     [][]string
		json     []string
		wantNoIn []string
	}{
		{
			name: "admin", detail: true,
			header: []string{"USERNAME", "ROLE", "LOCKED", "LOGIN-FAILURES", "QUORUM", "OWNED-KEYS", "SHARED-KEYS"},
			rows: [][]string{
				{"admin", "admin", "false", "0", "token-sign", "0", "0"},
				{"alice", "crypto-user", "true", "5", "-", "2", "0"},
			},
			json: []string{`"username":"alice","role":"crypto-user","locked":true,"login-failures":5,"quorum":[],"owned-keys":2,"shared-keys":0`,
				`"quorum":[{"strategy":"token-sign","status":"enabled"}]`},
		},
		{
			name: "not an admin", detail: false,
			header:   []string{"USERNAME", "ROLE"},
			rows:     [][]string{{"admin", "admin"}, {"alice", "crypto-user"}},
			json:     []string{`{"username":"admin","role":"admin"}`, `{"username":"alice","role":"crypto-user"}`},
			wantNoIn: []string{"locked", "login-failures", "quorum", "owned-keys", "shared-keys"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := entries(listed, tc.detail)
			header, rows := l.Table()
			if !slices.Equal(header, tc.header) {
				t.Errorf("header %q, want %q", header, tc.header)
			}
			if !slices.EqualFunc(rows, tc.rows, slices.Equal) {
				t.Errorf("rows %q, want %q", rows, tc.rows)
			}
			b, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.json {
				if !strings.Contains(string(b), want) {
					t.Errorf("JSON %s lacks %s", b, want)
				}
			}
			for _, no := range tc.wantNoIn {
				if strings.Contains(string(b), no) {
					t.Errorf("JSON %s tells %s", b, no)
				}
			}
		})
	}
}
