package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/rogpeppe/go-internal/testscript"
)

// The scripts in testdata run the real command: testscript re-executes this
// test binary as "coffer".
//
// Every HSM config the tests have coffer write (hsm init, controlplane, up)
// asks for the test-only password-hash cost (testcost.go): the commands
// this binary runs as inherit the variable.
func TestMain(m *testing.M) {
	if err := os.Setenv(testPasswordCostEnv, "1"); err != nil {
		panic(err)
	}
	testscript.Main(m, map[string]func(){
		"coffer": func() {
			if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
				os.Exit(exitCode(err, os.Stderr))
			}
		},
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			env.Setenv(testPasswordCostEnv, "1")        // the scripts' own hsm init
			if err := setupCLIScript(env); err != nil { // cli_*.txtar: a cluster
				return err
			}
			// A real audit log, and a copy with one record edited.
			path := filepath.Join(env.WorkDir, "audit.log")
			log, err := audit.Open(context.Background(), audit.Config{Path: path})
			if err != nil {
				return err
			}
			for _, op := range []string{"login", "key.generate", "key.sign"} {
				log.Append(audit.Event{User: "alice", Role: "crypto-user", Op: op, Result: "ok"})
			}
			if err := log.Close(); err != nil {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			tampered := strings.Replace(string(b), `"key.sign"`, `"key.wrap"`, 1)
			return os.WriteFile(filepath.Join(env.WorkDir, "tampered.log"), []byte(tampered), 0o600)
		},
	})
}
