package shell

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "coffer", "cli_history")
	h := loadHistory(path)
	for _, l := range []string{"key list", "key list", "", "login --username a --role admin --password secret-pw", "user list"} {
		h.Add(l)
	}
	if h.Len() != 2 || h.At(0) != "user list" || h.At(1) != "key list" {
		t.Fatalf("history: %q", h.entries)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret") || string(b) != "key list\nuser list\n" {
		t.Errorf("file holds %q", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	again := loadHistory(path)
	if again.Len() != 2 || again.At(0) != "user list" {
		t.Errorf("reloaded: %q", again.entries)
	}
	for i := 0; i < maxHistory+5; i++ {
		again.Add("cmd " + strings.Repeat("x", i%3) + string(rune('a'+i%26)))
	}
	if again.Len() != maxHistory {
		t.Errorf("%d lines kept", again.Len())
	}
	mem := loadHistory("")
	mem.Add("x")
	if mem.Len() != 1 {
		t.Error("an in-memory history lost a line")
	}
}

func TestHistoryPath(t *testing.T) {
	env := map[string]string{"XDG_STATE_HOME": "/s", "HOME": "/h"}
	if got := historyPath(func(k string) string { return env[k] }); got != "/s/coffer/cli_history" {
		t.Error(got)
	}
	delete(env, "XDG_STATE_HOME")
	if got := historyPath(func(k string) string { return env[k] }); got != "/h/.local/state/coffer/cli_history" {
		t.Error(got)
	}
	if got := historyPath(func(string) string { return "" }); got != "" {
		t.Error(got)
	}
}
