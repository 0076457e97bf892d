package shell

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/coffer-hsm/coffer/internal/cli"
)

// openPTY opens a pseudo-terminal: the controlling side and the terminal
// the shell reads and writes.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	if err := unix.IoctlSetPointerInt(int(ctl.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ctl.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ctl, tty
}

// TestRunTerminalBanner runs the shell on a terminal: it prints the banner
// first, then the prompt; `quit` leaves.
func TestRunTerminalBanner(t *testing.T) {
	ctl, tty := openPTY(t)
	env := &cli.Env{In: tty, Out: tty, Err: tty, Format: cli.JSON,
		Getenv: func(k string) string {
			if k == "XDG_STATE_HOME" {
				return t.TempDir()
			}
			return ""
		}}
	done := make(chan int, 1)
	go func() {
		done <- Run(context.Background(), env, Tree{
			Execute: func(context.Context, *cli.Env, []string) int { return 0 },
			CLI:     func(*cli.Env) *cobra.Command { return &cobra.Command{} },
		})
	}()
	var seen bytes.Buffer
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(seen.String(), "coffer> ") {
		if time.Now().After(deadline) {
			t.Fatalf("no prompt; the terminal showed %q", seen.String())
		}
		_ = ctl.SetReadDeadline(deadline)
		n, err := ctl.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("reading the terminal: %v; it showed %q", err, seen.String())
		}
	}
	if !strings.HasPrefix(seen.String(), Banner) {
		t.Errorf("the terminal showed %q, want the banner %q first", seen.String(), Banner)
	}
	if _, err := ctl.Write([]byte("quit\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != cli.ExitOK {
			t.Errorf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the shell did not leave on quit")
	}
}
