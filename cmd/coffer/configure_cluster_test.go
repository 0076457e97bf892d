package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/testtool"
)

// awsEnv is an environment with no AWS settings of the machine's: only
// extra's, and the instance metadata service off (nothing leaves loopback).
func awsEnv(extra ...string) []string {
	env := []string{"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_DEFAULT_PROFILE=",
		"AWS_REGION=", "AWS_DEFAULT_REGION=", "AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_CLOUDHSM_V2=", "AWS_MAX_ATTEMPTS=1"}
	return append(env, extra...)
}

// TestConfigureByClusterID runs CloudHSM's configure --cluster-id against
// a real `coffer controlplane`: the HSMs' addresses come from
// DescribeClusters (SigV4, credentials from the environment or from a
// shared credentials file and profile), coffer cli then works with the
// file, and -m picks up an HSM added with aws cloudhsmv2 create-hsm and
// drops one removed with delete-hsm.
func TestConfigureByClusterID(t *testing.T) {
	testtool.Require(t, "aws", "openssl")
	w := startWalkthrough(t)
	c := w.activeCluster("us-east-1", "subnet-0aaaaaaa", "subnet-0bbbbbbb")
	ca := filepath.Join(w.dir, "ca-cert.pem")
	keys := awsEnv("AWS_ACCESS_KEY_ID=AKIAWALKTHROUGH00001", "AWS_SECRET_ACCESS_KEY=walkthrough-secret-0123456789")
	first := net.JoinHostPort(c.ip, "2223")

	// Credentials in the environment.
	p := filepath.Join(w.dir, "by-id.json")
	out, err := w.cofferErr(keys, "configure", "cli", "--cluster-id", c.id, "--region", "us-east-1", "--endpoint", w.endpoint,
		"--hsm-ca-cert", ca, "--path", p)
	if err != nil {
		t.Fatalf("configure --cluster-id: %v\n%s", err, out)
	}
	if want := "cluster " + c.id + ", 1 HSM(s): " + first; !strings.Contains(out, want) {
		t.Fatalf("configure --cluster-id said %q, want %q", out, want)
	}
	f, err := client.ReadFile(p)
	if err != nil || f.ClusterID != c.id || strings.Join(f.HSMs, " ") != first {
		t.Fatalf("file: %+v %v", f, err)
	}
	if out := w.cofferCmd("cli", "--cluster-config", p, "--username", "admin", "--role", "admin", "--password", drAdminPassword,
		"user", "list"); !strings.Contains(out, "app_user") {
		t.Fatalf("user list through the configured file: %s", out)
	}

	// A shared credentials file and a profile with its region, as an
	// instance configured with aws configure has; the PKCS#11 module's file.
	awsDir := filepath.Join(w.dir, "aws")
	if err := os.MkdirAll(awsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	w.write("aws/credentials", "[coffer-test]\naws_access_key_id = AKIAWALKTHROUGH00001\naws_secret_access_key = walkthrough-secret-0123456789")
	w.write("aws/config", "[profile coffer-test]\nregion = us-east-1")
	shared := awsEnv("AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(awsDir, "credentials"), "AWS_CONFIG_FILE="+filepath.Join(awsDir, "config"),
		"AWS_PROFILE=coffer-test")
	pk := filepath.Join(w.dir, "pkcs11.json")
	if out, err := w.cofferErr(shared, "configure", "pkcs11", "--cluster-id", c.id, "--endpoint", w.endpoint, "--hsm-ca-cert", ca,
		"--path", pk); err != nil || !strings.Contains(out, first) {
		t.Fatalf("configure pkcs11 --cluster-id with a shared credentials file: %v\n%s", err, out)
	}
	// --profile names it too, and the file's trust anchor is reused.
	if out, err := w.cofferErr(awsEnv("AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(awsDir, "credentials")), "configure", "pkcs11",
		"--cluster-id", c.id, "--profile", "coffer-test", "--region", "us-east-1", "--endpoint", w.endpoint, "--path", pk); err != nil {
		t.Fatalf("configure --profile: %v\n%s", err, out)
	}

	// Errors say what is wrong. The control plane's answer is only where
	// to look: HSMs that do not verify under the given CA are refused.
	w.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "1", "-subj", "/CN=Other CA")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no credentials", awsEnv(), []string{"--cluster-id", c.id, "--region", "us-east-1"}, "no AWS credentials"},
		{"wrong secret", awsEnv("AWS_ACCESS_KEY_ID=AKIAWALKTHROUGH00001", "AWS_SECRET_ACCESS_KEY=wrong"),
			[]string{"--cluster-id", c.id, "--region", "us-east-1"}, "An error occurred ("},
		{"unknown cluster", keys, []string{"--cluster-id", "cluster-zzzzzzzzzzz", "--region", "us-east-1"}, "cluster not found: cluster-zzzzzzzzzzz in region us-east-1"},
		{"other region", keys, []string{"--cluster-id", c.id, "--region", "us-west-2"}, "cluster not found"},
		{"no region", keys, []string{"--cluster-id", c.id}, "no AWS region"},
		{"another CA", keys, []string{"--cluster-id", c.id, "--region", "us-east-1", "--hsm-ca-cert", filepath.Join(w.dir, "other-ca.pem")}, "no HSM answered"},
	} {
		args := append([]string{"configure", "cli", "--endpoint", w.endpoint, "--path", filepath.Join(w.dir, "x.json")}, tc.args...)
		if !strings.Contains(strings.Join(tc.args, " "), "--hsm-ca-cert") {
			args = append(args, "--hsm-ca-cert", ca)
		}
		out, err := w.cofferErr(tc.env, args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %v, want an error with %q:\n%s", tc.name, err, tc.want, out)
		}
		if strings.Contains(out, "walkthrough-secret") {
			t.Errorf("%s: the secret key is printed:\n%s", tc.name, out)
		}
	}
	if _, err := os.Stat(filepath.Join(w.dir, "x.json")); err == nil {
		t.Error("a failed configure wrote its file")
	}
	// A cluster that is not initialized has no usable HSM yet.
	var created struct{ Cluster struct{ ClusterId string } }
	w.awsJSON(&created, "create-cluster", "--hsm-type", "hsm1.medium", "--subnet-ids", "subnet-0ccccccc")
	if out, err := w.cofferErr(keys, "configure", "cli", "--cluster-id", created.Cluster.ClusterId, "--region", "us-east-1",
		"--endpoint", w.endpoint, "--hsm-ca-cert", ca, "--path", filepath.Join(w.dir, "x.json")); err == nil ||
		!strings.Contains(out, "is not ACTIVE or INITIALIZED") {
		t.Errorf("configure of an uninitialized cluster: %v\n%s", err, out)
	}

	// A client that runs meanwhile, from the same file (as the PKCS#11
	// module would, but refreshing each second rather than 30 s).
	running, err := client.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	running.MembershipRefresh = "1s"
	rcfg, err := running.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	rc, err := client.Dial(ctx, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sess, err := rc.Login(ctx, "crypto-user", "app_user", drCUPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(ctx)
	members := func() (up []string) {
		for _, st := range rc.ClusterInfo(ctx) {
			if st.Up && st.Err == nil {
				up = append(up, st.Address)
			}
		}
		return up
	}

	// An HSM added with create-hsm: -m learns its address from the HSM
	// already configured, and coffer cli reaches both.
	w.aws("create-hsm", "--cluster-id", c.id, "--availability-zone", "us-east-1b")
	w.waitFor("ACTIVE ACTIVE", "describe-clusters", "--filters", "clusterIds="+c.id, "--query", "join(' ', Clusters[0].Hsms[].State)")
	second := net.JoinHostPort(w.aws("describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].Hsms[1].EniIp"), "2223")
	w.eventually("-m to learn of the new HSM", func() (bool, string) {
		out, err := w.cofferErr(nil, "configure", "cli", "-m", "--path", p)
		return err == nil && strings.Contains(out, "added "+second), out
	})
	if f, err := client.ReadFile(p); err != nil || strings.Join(f.HSMs, " ") != first+" "+second {
		t.Fatalf("after -m: %+v %v", f, err)
	}
	w.eventually("both HSMs to serve through the refreshed file", func() (bool, string) {
		out, err := w.cofferErr(nil, "cli", "--cluster-config", p, "--output", "table", "cluster", "hsm-info")
		return err == nil && strings.Count(out, "ACTIVE") == 2, out
	})

	// The running client found it too, without a restart, and uses it.
	w.eventually("the running client to use the new HSM", func() (bool, string) {
		got := members()
		return strings.Join(got, " ") == first+" "+second, strings.Join(got, " ")
	})
	for range 10 {
		if _, err := sess.GenerateRandom(ctx, 32); err != nil {
			t.Fatalf("GenerateRandom on the running client: %v", err)
		}
	}

	// The added HSM deleted: -m drops it.
	secondID := w.aws("describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].Hsms[1].HsmId")
	w.aws("delete-hsm", "--cluster-id", c.id, "--hsm-id", secondID)
	w.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+c.id, "--query", "join(' ', Clusters[0].Hsms[].State)")
	w.eventually("-m to drop the deleted HSM", func() (bool, string) {
		out, err := w.cofferErr(nil, "configure", "cli", "-m", "--path", p)
		return err == nil && strings.Contains(out, "removed "+second), out
	})
	if f, err := client.ReadFile(p); err != nil || strings.Join(f.HSMs, " ") != first {
		t.Fatalf("after -m: %+v %v", f, err)
	}
	w.eventually("the running client to drop the deleted HSM", func() (bool, string) {
		got := rc.ClusterInfo(ctx)
		return len(got) == 1 && got[0].Address == first, fmt.Sprint(got)
	})
	if _, err := sess.GenerateRandom(ctx, 32); err != nil {
		t.Fatalf("GenerateRandom after the HSM left: %v", err)
	}

	if out := w.cofferCmd("cli", "--cluster-config", p, "--username", "admin", "--role", "admin", "--password", drAdminPassword,
		"user", "list"); !strings.Contains(out, "app_user") {
		t.Fatalf("user list after the refresh: %s", out)
	}
	// add-cluster --cluster-id without -a asks DescribeClusters too.
	both := filepath.Join(w.dir, "both.json")
	if out, err := w.cofferErr(keys, "configure", "cli", "-a", first, "--hsm-ca-cert", ca, "--path", both); err != nil {
		t.Fatalf("configure -a: %v\n%s", err, out)
	}
	if out, err := w.cofferErr(keys, "configure", "cli", "add-cluster", "--cluster-id", c.id, "--region", "us-east-1",
		"--endpoint", w.endpoint, "--path", both); err != nil || !strings.Contains(out, "cluster "+c.id+", 1 HSM(s): "+first) {
		t.Fatalf("add-cluster --cluster-id: %v\n%s", err, out)
	}

	// The cluster's first HSM deleted, with another added: the survivor
	// (which cloned its key from the first) keeps serving on its own.
	w.aws("create-hsm", "--cluster-id", c.id, "--availability-zone", "us-east-1b")
	w.waitFor("ACTIVE ACTIVE", "describe-clusters", "--filters", "clusterIds="+c.id, "--query", "join(' ', Clusters[0].Hsms[].State)")
	w.aws("delete-hsm", "--cluster-id", c.id, "--hsm-id", w.aws("describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].Hsms[0].HsmId"))
	w.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+c.id, "--query", "join(' ', Clusters[0].Hsms[].State)")
	w.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].State")
	// The survivor restarts with its new peer list once the other is gone:
	// configure verifies the HSM it is told of, so it may take a try more.
	w.eventually("configure to name the HSM left", func() (bool, string) {
		out, err := w.cofferErr(keys, "configure", "cli", "--cluster-id", c.id, "--region", "us-east-1", "--endpoint", w.endpoint, "--path", p)
		return err == nil && !strings.Contains(out, first), out
	})
	w.eventually("the HSM left after the first was deleted to serve", func() (bool, string) {
		out, err := w.cofferErr(nil, "cli", "--cluster-config", p, "--username", "admin", "--role", "admin", "--password", drAdminPassword, "user", "list")
		return err == nil && strings.Contains(out, "app_user"), out
	})

	// The last HSM deleted: the cluster has none to configure.
	w.aws("delete-hsm", "--cluster-id", c.id, "--hsm-id", w.aws("describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].Hsms[0].HsmId"))
	w.waitFor("0", "describe-clusters", "--filters", "clusterIds="+c.id, "--query", "length(Clusters[0].Hsms)")
	if out, err := w.cofferErr(keys, "configure", "cli", "--cluster-id", c.id, "--region", "us-east-1", "--endpoint", w.endpoint,
		"--path", p); err == nil || !strings.Contains(out, "has no HSMs: add one with aws cloudhsmv2 create-hsm") {
		t.Errorf("configure of a cluster without HSMs: %v\n%s", err, out)
	}
}
