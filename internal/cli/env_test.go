package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigFile(t *testing.T) {
	for _, c := range []struct {
		name string
		flag string
		env  map[string]string
		want string
		err  bool
	}{
		{name: "flag first", flag: "/f.json", env: map[string]string{EnvConfig: "/e.json", "HOME": "/h"}, want: "/f.json"},
		{name: "then the variable", env: map[string]string{EnvConfig: "/e.json", "HOME": "/h"}, want: "/e.json"},
		{name: "then XDG", env: map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, want: "/x/coffer/cli.json"},
		{name: "then home", env: map[string]string{"HOME": "/h"}, want: "/h/.config/coffer/cli.json"},
		{name: "nothing", env: map[string]string{}, err: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &Env{ConfigPath: c.flag, Getenv: func(k string) string { return c.env[k] }}
			got, err := e.ConfigFile()
			if (err != nil) != c.err || got != c.want {
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestSessionNeedsCredentials(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "cli.json")
	for _, c := range []struct {
		name string
		env  Env
		want string
		code int
	}{
		{"shell", Env{Interactive: true}, "run `login --username NAME", ExitFailed},
		{"command line", Env{}, "pass --username NAME --role", ExitFailed},
		{"no role", Env{Creds: Credentials{Username: "alice"}}, "no role for alice", ExitUsage},
		{"bad role", Env{Creds: Credentials{Username: "alice", Role: "root"}}, `role "root"`, ExitUsage},
		{"no password", Env{Creds: Credentials{Username: "alice", Role: RoleCryptoUser}}, "a password is needed", ExitUsage},
		{"no configuration", Env{ConfigPath: missing, Creds: Credentials{Username: "alice", Role: RoleCryptoUser, Password: "pw-pw-pw"}},
			"no cluster configuration at " + missing + "; run `coffer configure cli", ExitFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.env.Session(context.Background())
			msg, code := Describe(err)
			if !strings.Contains(msg, c.want) || code != c.code {
				t.Errorf("got %q (%d), want %q (%d)", msg, code, c.want, c.code)
			}
			if _, _, ok := c.env.LoggedIn(); ok {
				t.Error("logged in")
			}
		})
	}
}

func TestNewPassword(t *testing.T) {
	answers := []string{"first-pw", "other-pw"}
	e := &Env{ConfirmPasswords: true, ReadPassword: func(string) (string, error) {
		a := answers[0]
		answers = answers[1:]
		return a, nil
	}}
	if _, err := e.NewPassword(""); err == nil || !strings.Contains(err.Error(), "the passwords differ") {
		t.Errorf("differing passwords: %v", err)
	}
	if pw, err := e.NewPassword("given-pw"); err != nil || pw != "given-pw" {
		t.Errorf("given: %q %v", pw, err)
	}
}

func TestWithCloudHSMEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	pin := map[string]string{EnvCloudHSMPIN: "alice:pw-1", EnvCloudHSMRole: "crypto-user"}
	for _, tc := range []struct {
		name string
		in   Credentials
		env  map[string]string
		want Credentials
		bad  bool
	}{
		{"nothing set", Credentials{}, nil, Credentials{}, false},
		{"PIN and role", Credentials{}, pin, Credentials{Username: "alice", Role: "crypto-user", Password: "pw-1"}, false},
		{"flags win", Credentials{Username: "bob", Role: "admin", Password: "x"}, pin, Credentials{Username: "bob", Role: "admin", Password: "x"}, false},
		{"another user gets no PIN password", Credentials{Username: "bob"}, pin, Credentials{Username: "bob", Role: "crypto-user"}, false},
		{"same user takes the password", Credentials{Username: "alice"}, pin, Credentials{Username: "alice", Role: "crypto-user", Password: "pw-1"}, false},
		{"malformed PIN", Credentials{}, map[string]string{EnvCloudHSMPIN: "alice"}, Credentials{}, true},
	} {
		got, err := WithCloudHSMEnv(tc.in, env(tc.env))
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("%s: %+v %v, want %+v (error %v)", tc.name, got, err, tc.want, tc.bad)
		}
	}
}
