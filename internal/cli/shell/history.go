package shell

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// maxHistory bounds the lines kept, in memory and on disk.
const maxHistory = 1000

// history is the shell's history, most recent last, kept in memory and
// appended to a file (if path is set) so that the next shell has it. Lines
// that carry a password are not kept at all. It implements term.History.
type history struct {
	entries []string
	path    string
}

// historyPath is $XDG_STATE_HOME/coffer/cli_history, or
// ~/.local/state/coffer/cli_history; "" when neither is known.
func historyPath(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "coffer", "cli_history")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "coffer", "cli_history")
	}
	return ""
}

// loadHistory reads the last lines of the history file, if there is one.
func loadHistory(path string) *history {
	h := &history{path: path}
	if path == "" {
		return h
	}
	f, err := os.Open(path)
	if err != nil {
		return h
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !sensitive(line) {
			h.entries = append(h.entries, line)
		}
	}
	if n := len(h.entries); n > maxHistory {
		h.entries = h.entries[n-maxHistory:]
	}
	return h
}

// sensitive reports whether a line holds a secret.
func sensitive(line string) bool {
	return strings.Contains(line, "--password")
}

// Add records a line; a line with a password, an empty line or a repeat of
// the last one is dropped.
func (h *history) Add(line string) {
	if strings.TrimSpace(line) == "" || sensitive(line) {
		return
	}
	if n := len(h.entries); n > 0 && h.entries[n-1] == line {
		return
	}
	h.entries = append(h.entries, line)
	if n := len(h.entries); n > maxHistory {
		h.entries = h.entries[n-maxHistory:]
	}
	if h.path == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return // the history is a convenience: it never stops the shell
	}
	_, _ = f.WriteString(line + "\n")
	_ = f.Close()
}

// Len is the number of lines.
func (h *history) Len() int { return len(h.entries) }

// At returns a line, 0 being the most recent.
func (h *history) At(i int) string { return h.entries[len(h.entries)-1-i] }
