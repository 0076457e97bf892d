package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/controlplane"
)

// DefaultPKCS11Config is where `coffer configure pkcs11` writes by default.
const DefaultPKCS11Config = "/etc/coffer/pkcs11.json"

const configureUsage = `usage: coffer configure cli|pkcs11 -a HOST[:PORT] [-a HOST[:PORT] ...] --hsm-ca-cert FILE [--path FILE]
       [--client-cert-hsm-tls-file CERT --client-key-hsm-tls-file KEY | --no-client-cert]
       coffer configure cli|pkcs11 --cluster-id ID [--region R] [--endpoint URL] [--profile P] --hsm-ca-cert FILE [--path FILE] [...]
       coffer configure cli|pkcs11 add-cluster --cluster-id ID [-a HOST[:PORT] ...] --hsm-ca-cert FILE [--path FILE]
       [--client-cert-hsm-tls-file CERT --client-key-hsm-tls-file KEY]
       coffer configure cli|pkcs11 -m [--cluster-id ID] [--path FILE]

Write the cluster configuration file that coffer cli (configure cli) or the
PKCS#11 module (configure pkcs11) reads: the HSMs' addresses, the customer CA
certificate that the cluster certificate chains to, and the cluster's id,
which configure learns from the HSMs (their certificates must verify under
the CA). Settings already in the file (synchronization, recovery, logging,
the client certificate) are kept.

--cluster-id without -a learns the HSMs' addresses (their EniIp, port 2223)
from the control plane's DescribeClusters, as CloudHSM's configure does:
signed with the usual AWS credentials (AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, AWS_PROFILE or --profile, ~/.aws/credentials and
~/.aws/config), in --region (or AWS_REGION, or the profile's), at
--endpoint (or AWS_ENDPOINT_URL). The cluster must be ACTIVE or
INITIALIZED (or DEGRADED) and have an ACTIVE HSM. The HSMs must still prove they are the
cluster's under --hsm-ca-cert; without --hsm-ca-cert, the trust anchor the
file already has for that cluster is used.

-m refreshes the file's HSM list (of every cluster in it, or of
--cluster-id): it asks a reachable HSM listed there, verified as above, for
the cluster's current HSMs, and replaces the file atomically. Run it after
HSMs were added or removed, before changing users.

For client mutual TLS, --client-cert-hsm-tls-file and
--client-key-hsm-tls-file name the certificate (PEM, leaf first, then any
intermediates) and private key (PEM) the client presents to the HSMs; its CA
must be registered on the cluster (coffer cli cluster mtls
register-trust-anchor). --no-client-cert removes them from the file.

add-cluster adds a further cluster to the file (or replaces the one of that
id), as CloudHSM's configure-cli add-cluster does: with several clusters
configured, coffer cli commands take --cluster-id, key replicate and user
replicate copy keys and users between clone clusters, and the PKCS#11 module
shows one slot per cluster. The HSMs at -a must belong to --cluster-id;
without -a, their addresses come from DescribeClusters.

Defaults: cli writes $XDG_CONFIG_HOME/coffer/cli.json (or
~/.config/coffer/cli.json); pkcs11 writes /etc/coffer/pkcs11.json.

Examples:
  coffer configure cli -a 127.0.0.11 -a 127.0.0.12:2223 --hsm-ca-cert ./cluster/customerCA.crt
  coffer configure cli --cluster-id cluster-2b3c4d5e6f7 --region us-east-1 --hsm-ca-cert ./cluster/customerCA.crt
  coffer configure cli -m
  coffer configure cli -a 127.0.0.11:2223 --hsm-ca-cert ./cluster/customerCA.crt \
      --client-cert-hsm-tls-file ./client.crt --client-key-hsm-tls-file ./client.key
  coffer configure cli add-cluster --cluster-id cluster-2b3c4d5e6f7 -a 127.0.0.21:2223 --hsm-ca-cert ./region2/customerCA.crt
`

// addrsFlag collects -a HOST[:PORT]. An address without a port is the
// HSM's ENI address as describe-clusters shows it (EniIp): the HSM port is
// CloudHSM's, 2223.
type addrsFlag []string

func (a *addrsFlag) String() string { return strings.Join(*a, ",") }
func (a *addrsFlag) Set(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
		if host == "" || strings.ContainsAny(host, "/ ") {
			return fmt.Errorf("HSM address %q: want HOST or HOST:PORT", s)
		}
		s = net.JoinHostPort(host, strconv.Itoa(controlplane.DefaultHSMPort))
	}
	*a = append(*a, s)
	return nil
}

func runConfigure(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "cli" && args[0] != "pkcs11" {
		fmt.Fprint(stderr, configureUsage)
		return flag.ErrHelp
	}
	kind := args[0]
	add := len(args) > 1 && args[1] == "add-cluster"
	if add {
		args = append([]string{kind}, args[2:]...)
	}
	def := DefaultPKCS11Config
	if kind == "cli" {
		var err error
		if def, err = cli.DefaultConfigPath(os.Getenv); err != nil {
			def = ""
		}
	}
	fset := flag.NewFlagSet("configure "+kind, flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(stderr, configureUsage+"\nflags:\n")
		printFlags(fset)
	}
	var addrs addrsFlag
	fset.Var(&addrs, "a", "an HSM's address HOST[:PORT] (its EniIp; the port is 2223 when left out; repeat for each HSM)")
	ca := fset.String("hsm-ca-cert", "", "the customer CA certificate (trust anchor), PEM")
	path := fset.String("path", def, "the configuration file to write")
	fset.StringVar(path, "config", def, "same as --path")
	clientCert := fset.String("client-cert-hsm-tls-file", "", "the client certificate for mutual TLS with the HSMs, PEM")
	clientKey := fset.String("client-key-hsm-tls-file", "", "the client certificate's private key, PEM")
	noClientCert := fset.Bool("no-client-cert", false, "remove the client certificate and key from the file")
	clusterID := fset.String("cluster-id", "", "the cluster's id: without -a, its HSMs' addresses come from DescribeClusters (add-cluster: the cluster to add)")
	region := fset.String("region", "", "the AWS region of --cluster-id (default: AWS_REGION or the AWS profile's)")
	endpoint := fset.String("endpoint", "", "the CloudHSM control plane endpoint URL of --cluster-id (default: AWS_ENDPOINT_URL or AWS's)")
	profile := fset.String("profile", "", "the AWS profile of --cluster-id (default: AWS_PROFILE or default)")
	refresh := fset.Bool("m", false, "refresh the file's HSM list from a reachable HSM of the cluster")
	if err := parseFlags(fset, args[1:]); err != nil {
		return err
	}
	lookup := awsLookup{Region: *region, Endpoint: *endpoint, Profile: *profile}
	switch {
	case fset.NArg() > 0:
		fset.Usage()
		return fmt.Errorf("unexpected argument %q", fset.Arg(0))
	case *path == "":
		return errors.New("no configuration directory: pass --path FILE")
	case *refresh && (add || len(addrs) > 0 || *ca != "" || *clientCert != "" || *clientKey != "" || *noClientCert || lookup != awsLookup{}):
		return errors.New("-m takes only --cluster-id and --path: it refreshes the HSM list of a configuration already written")
	case *refresh:
		return refreshConfig(ctx, *path, *clusterID, stdout, stderr)
	case add && *clusterID == "":
		fset.Usage()
		return errors.New("add-cluster needs --cluster-id")
	case add && *noClientCert:
		return errors.New("--no-client-cert is not for add-cluster: a cluster added without a client certificate has none")
	case len(addrs) > 0 && lookup != awsLookup{}:
		return errors.New("--region, --endpoint and --profile are for --cluster-id without -a")
	case len(addrs) == 0 && *clusterID == "":
		fset.Usage()
		return errors.New("-a or --cluster-id is required")
	case (*clientCert == "") != (*clientKey == ""):
		return errors.New("--client-cert-hsm-tls-file and --client-key-hsm-tls-file go together")
	case *noClientCert && *clientCert != "":
		return errors.New("--no-client-cert and --client-cert-hsm-tls-file exclude each other")
	}
	f, err := client.ReadFile(*path)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = &client.File{}, nil
	}
	if err != nil {
		return err
	}
	if *ca == "" && *clusterID != "" {
		if one, err := f.ForCluster(*clusterID); err == nil {
			*ca = one.HSMCACert
		}
	}
	if *ca == "" {
		fset.Usage()
		return errors.New("--hsm-ca-cert is required")
	}
	if len(addrs) == 0 {
		if addrs, err = clusterHSMs(ctx, *clusterID, lookup); err != nil {
			return fmt.Errorf("cluster %s: %w", *clusterID, err)
		}
	}
	anchor, err := filepath.Abs(*ca)
	if err != nil {
		return err
	}
	id, err := discoverCluster(ctx, addrs, anchor, stderr)
	if err != nil {
		return err
	}
	if *clusterID != "" && id.ClusterID != *clusterID {
		return fmt.Errorf("the HSMs at %s belong to cluster %s, not %s", strings.Join(addrs, " "), id.ClusterID, *clusterID)
	}
	if !add && *clusterID != "" && f.ClusterID != *clusterID && slices.Contains(f.ClusterIDs(), *clusterID) {
		add = true // a further cluster of the file: update its entry, not the first cluster
	}
	if add {
		return addCluster(f, *path, *clusterID, id, addrs, anchor, *clientCert, *clientKey, stdout)
	}
	f.HSMs, f.HSMCACert, f.ClusterID, f.CertificateClusterID = addrs, anchor, id.ClusterID, id.CertificateClusterID
	switch {
	case *noClientCert:
		f.ClientCert, f.ClientKey = "", ""
	case *clientCert != "":
		if f.ClientCert, err = filepath.Abs(*clientCert); err != nil {
			return err
		}
		if f.ClientKey, err = filepath.Abs(*clientKey); err != nil {
			return err
		}
	}
	if _, err := f.Config(nil); err != nil { // also loads the client certificate and key
		return err
	}
	if err := f.WriteFile(*path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: cluster %s, %d HSM(s): %s\n", *path, id.ClusterID, len(addrs), strings.Join(addrs, " "))
	if f.ClientCert != "" {
		fmt.Fprintf(stdout, "client certificate %s, key %s\n", f.ClientCert, f.ClientKey)
	}
	return nil
}

// discoverCluster asks each HSM which cluster it belongs to (the cluster
// its node certificate names, and the cluster certificate's if that is
// another); they must all agree, and at least one must answer.
func discoverCluster(ctx context.Context, addrs []string, anchor string, stderr io.Writer) (client.ClusterIdentity, error) {
	var id client.ClusterIdentity
	var errs []error
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := client.DiscoverCluster(dctx, a, anchor)
		cancel()
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "coffer: warning: HSM %s: %v\n", a, err)
			errs = append(errs, err)
		case id.ClusterID != "" && got.ClusterID != id.ClusterID:
			return id, fmt.Errorf("HSM %s belongs to cluster %s, the others to %s", a, got.ClusterID, id.ClusterID)
		case id.ClusterID != "" && got != id:
			return id, fmt.Errorf("HSM %s of cluster %s is under the cluster certificate of %s, the others under %s's",
				a, got.ClusterID, lineage(got), lineage(id))
		default:
			id = got
		}
	}
	if id.ClusterID == "" {
		return id, fmt.Errorf("no HSM answered: %w", errors.Join(errs...))
	}
	return id, nil
}

// lineage is the cluster id a cluster's certificate names.
func lineage(id client.ClusterIdentity) string {
	if id.CertificateClusterID != "" {
		return id.CertificateClusterID
	}
	return id.ClusterID
}

// addCluster adds (or replaces) the cluster want to f and writes it; the
// HSMs' node certificates must have said they belong to it (got).
func addCluster(f *client.File, path, want string, got client.ClusterIdentity, addrs []string, anchor, cert, key string, stdout io.Writer) error {
	if got.ClusterID != want {
		return fmt.Errorf("the HSMs at %s belong to cluster %s, not %s", strings.Join(addrs, " "), got.ClusterID, want)
	}
	e := client.ClusterEntry{ClusterID: want, CertificateClusterID: got.CertificateClusterID, HSMs: addrs, HSMCACert: anchor}
	if cert != "" {
		var err error
		if e.ClientCert, err = filepath.Abs(cert); err != nil {
			return err
		}
		if e.ClientKey, err = filepath.Abs(key); err != nil {
			return err
		}
	}
	f.AddCluster(e)
	one, err := f.ForCluster(want)
	if err != nil {
		return err
	}
	if _, err := one.Config(nil); err != nil { // also loads the client certificate and key
		return err
	}
	if err := f.Check(); err != nil {
		return err
	}
	if err := f.WriteFile(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: cluster %s, %d HSM(s): %s; clusters configured: %s\n", path, want, len(addrs), strings.Join(addrs, " "),
		strings.Join(f.ClusterIDs(), " "))
	return nil
}

// refreshConfig is configure -m: each cluster of the file (or only
// clusterID) gets the HSM list that a reachable HSM of it gives, reached
// and verified with the file's own trust settings for that cluster.
func refreshConfig(ctx context.Context, path, clusterID string, stdout, stderr io.Writer) error {
	f, err := client.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w (-m refreshes a configuration that coffer configure wrote)", err)
	}
	ids := f.ClusterIDs()
	if clusterID != "" {
		if !slices.Contains(ids, clusterID) {
			_, err := f.ForCluster(clusterID)
			return err
		}
		ids = []string{clusterID}
	}
	if len(ids) == 0 {
		return fmt.Errorf("%s names no cluster: run coffer configure with -a or --cluster-id first", path)
	}
	type change struct {
		id       string
		old, new []string
	}
	var changes []change
	for _, id := range ids {
		one, err := f.ForCluster(id)
		if err != nil {
			return err
		}
		cfg, err := one.Config(nil)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", id, err)
		}
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		got, err := client.Members(mctx, cfg)
		cancel()
		if err != nil {
			return fmt.Errorf("cluster %s: %w", id, err)
		}
		if n := one.CreateObjectMinimumNodes; n > len(got) {
			fmt.Fprintf(stderr, "coffer: warning: cluster %s has %d HSM(s), fewer than create_object_minimum_nodes %d: "+
				"clients refuse the file until HSMs are added (then -m again) or the setting is lowered\n", id, len(got), n)
		}
		changes = append(changes, change{id: id, old: one.HSMs, new: got})
	}
	for _, c := range changes {
		setHSMs(f, c.id, c.new)
	}
	if err := f.Check(); err != nil {
		return err
	}
	if err := f.WriteFile(path); err != nil {
		return err
	}
	for _, c := range changes {
		var added, removed []string
		for _, a := range c.new {
			if !slices.Contains(c.old, a) {
				added = append(added, a)
			}
		}
		for _, a := range c.old {
			if !slices.Contains(c.new, a) {
				removed = append(removed, a)
			}
		}
		fmt.Fprintf(stdout, "%s: cluster %s, %d HSM(s): %s", path, c.id, len(c.new), strings.Join(c.new, " "))
		if len(added) > 0 {
			fmt.Fprintf(stdout, "; added %s", strings.Join(added, " "))
		}
		if len(removed) > 0 {
			fmt.Fprintf(stdout, "; removed %s", strings.Join(removed, " "))
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

// setHSMs replaces the HSM list of cluster id in f.
func setHSMs(f *client.File, id string, hsms []string) {
	if f.ClusterID == id {
		f.HSMs = hsms
		return
	}
	for i := range f.Clusters {
		if f.Clusters[i].ClusterID == id {
			f.Clusters[i].HSMs = hsms
		}
	}
}
