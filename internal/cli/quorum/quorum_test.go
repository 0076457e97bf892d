package quorum

import (
	"slices"
	"testing"

	"github.com/coffer-hsm/coffer/internal/cli"
)

func TestTokenSignCommands(t *testing.T) {
	var names []string
	for _, c := range TokenSign(&cli.Env{}).Commands() {
		names = append(names, c.Name())
	}
	want := []string{"approve", "delete", "generate", "list", "list-quorum-values", "set-quorum-value"}
	if !slices.Equal(names, want) {
		t.Errorf("token-sign has %q, want %q", names, want)
	}
}

func TestValuesTable(t *testing.T) {
	header, rows := Values{"user": 2, "quorum": 1}.Table()
	if len(header) != 2 || len(rows) != 2 || rows[0][0] != "quorum" || rows[1][1] != "2" {
		t.Errorf("%q %q", header, rows)
	}
}
