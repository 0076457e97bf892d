package shell

import (
	"slices"
	"testing"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
)

// testTree is a small command tree shaped like coffer cli's.
func testTree() *cobra.Command {
	var s string
	var m []string
	var b bool
	list := &cobra.Command{Use: "list", Run: func(*cobra.Command, []string) {}}
	cli.MultiFlag(list, &m, "filter", "keys")
	list.Flags().BoolVar(&b, "verbose", false, "more")
	gen := &cobra.Command{Use: "aes", Run: func(*cobra.Command, []string) {}}
	gen.Flags().StringVar(&s, "label", "", "label")
	cli.MultiFlag(gen, &m, "attributes", "attributes")
	login := &cobra.Command{Use: "login", Run: func(*cobra.Command, []string) {}}
	login.Flags().StringVar(&s, "role", "", "role")
	cli.Enum(login, "role", "admin", "crypto-user")
	root := &cobra.Command{Use: "cli"}
	root.PersistentFlags().StringVar(&s, "output", "json", "format")
	root.AddCommand(cli.Group("key", "keys", list, cli.Group("generate-symmetric", "gen", gen)), login,
		cli.Group("quorum", "q"))
	return root
}

func TestComplete(t *testing.T) {
	root := testTree()
	for _, c := range []struct {
		name     string
		line     string
		pos      int // -1: the end
		want     string
		wantPos  int // -1: the end of want
		showList []string
	}{
		{name: "unique command", line: "ke", pos: -1, want: "key ", wantPos: -1},
		{name: "common prefix", line: "q", pos: -1, want: "qu", wantPos: -1},
		{name: "ambiguous, shows the list", line: "qu", pos: -1, want: "qu", wantPos: -1, showList: []string{"quit", "quorum"}},
		{name: "subcommand", line: "key gen", pos: -1, want: "key generate-symmetric ", wantPos: -1},
		{name: "deeper", line: "key generate-symmetric a", pos: -1, want: "key generate-symmetric aes ", wantPos: -1},
		{name: "flag", line: "key list --ver", pos: -1, want: "key list --verbose ", wantPos: -1},
		{name: "inherited flag", line: "key list --out", pos: -1, want: "key list --output ", wantPos: -1},
		{name: "flag value", line: "login --role cr", pos: -1, want: "login --role crypto-user ", wantPos: -1},
		{name: "filter attribute", line: "key list --filter attr.lab", pos: -1, want: "key list --filter attr.label=", wantPos: -1},
		{name: "second filter value", line: "key list --filter attr.label=x attr.cl", pos: -1, want: "key list --filter attr.label=x attr.class=", wantPos: -1},
		{name: "attributes", line: "key generate-symmetric aes --label k --attributes extr", pos: -1,
			want: "key generate-symmetric aes --label k --attributes extractable=", wantPos: -1},
		{name: "after a flag's value", line: "login --role admin --ro", pos: -1, want: "login --role admin --role ", wantPos: -1},
		{name: "in the middle", line: "ke list", pos: 2, want: "key  list", wantPos: 4},
		{name: "nothing", line: "key zzz", pos: -1, want: "key zzz", wantPos: -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			pos := c.pos
			if pos < 0 {
				pos = len(c.line)
			}
			wantPos := c.wantPos
			if wantPos < 0 {
				wantPos = len(c.want)
			}
			got, gotPos, list := complete(root, c.line, pos)
			if got != c.want || gotPos != wantPos || !slices.Equal(list, c.showList) {
				t.Errorf("got %q@%d %q, want %q@%d %q", got, gotPos, list, c.want, wantPos, c.showList)
			}
		})
	}
}
