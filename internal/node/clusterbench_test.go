package node

import (
	"crypto/tls"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// benchCluster is two nodes of one cluster over TLS on loopback, activated,
// with the crypto user alice, and a cluster client logged in as alice.
type benchCluster struct {
	a, b *running
	pki  *testPKI
	cl   *client.Cluster
	s    *client.Session
}

func newBenchCluster(b *testing.B) *benchCluster {
	b.Helper()
	pki := newTestPKI(b, "cluster-bench")
	cfgA := config(b, pki, 1, MasterKeyCreate)
	cfgB := config(b, pki, 2, MasterKeyClone)
	cfgA.Peers = []PeerAddr{{ID: 2, Addr: cfgB.Listener.Addr().String()}}
	cfgB.Peers = []PeerAddr{{ID: 1, Addr: cfgA.Listener.Addr().String()}}
	na, nb := start(b, cfgA), start(b, cfgB)
	eventually(b, "node 1 ready", na.Ready)
	eventually(b, "node 2 ready", nb.Ready)
	activate(b, hsmv1.NewHSMClient(dial(b, pki, na.Addr())))
	cl := dialCluster(b, pki, na.Addr(), nb.Addr())
	s, err := cl.Login(b.Context(), "crypto-user", cuName, cuPW)
	if err != nil {
		b.Fatal(err)
	}
	return &benchCluster{a: na, b: nb, pki: pki, cl: cl, s: s}
}

func dialCluster(b testing.TB, pki *testPKI, addrs ...string) *client.Cluster {
	b.Helper()
	cl, err := client.Dial(b.Context(), client.Config{
		HSMs: addrs,
		TLS: func(host string) (*tls.Config, error) {
			return &tls.Config{RootCAs: pki.pool, ServerName: host, MinVersion: tls.VersionTLS13}, nil
		},
		ReconnectAttempts: client.ReconnectForever,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return cl
}

// BenchmarkClusterClient measures operations through the cluster client
// over TLS to a 2-HSM cluster, at 1, 8 and 64 concurrent callers sharing
// one logged-in session (the client spreads them over both HSMs). Compare
// with the device-only figures of internal/hsm's benchmarks.
func BenchmarkClusterClient(b *testing.B) {
	bc := newBenchCluster(b)
	ctx := b.Context()
	token := []client.Attribute{client.Bool(ck.CKA_TOKEN, true)}
	ulong := func(t ck.AttributeType, v uint64) client.Attribute {
		return client.Attribute{Type: t, Value: []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24), 0, 0, 0, 0}}
	}
	min2 := client.MinNodes(2)
	_, ecPriv, err := bc.s.GenerateKeyPair(ctx, client.Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN},
		append(slices.Clone(token), client.Attribute{Type: ck.CKA_EC_PARAMS, Value: p256Params(b)}), token, min2)
	if err != nil {
		b.Fatal(err)
	}
	_, rsaPriv, err := bc.s.GenerateKeyPair(ctx, client.Mechanism{Type: ck.CKM_RSA_PKCS_KEY_PAIR_GEN},
		append(slices.Clone(token), ulong(ck.CKA_MODULUS_BITS, 2048)), token, min2)
	if err != nil {
		b.Fatal(err)
	}
	aes, err := bc.s.GenerateKey(ctx, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, append(slices.Clone(token), ulong(ck.CKA_VALUE_LEN, 32)), min2)
	if err != nil {
		b.Fatal(err)
	}
	hmac, err := bc.s.GenerateKey(ctx, client.Mechanism{Type: ck.CKM_GENERIC_SECRET_KEY_GEN}, append(slices.Clone(token), ulong(ck.CKA_VALUE_LEN, 32)), min2)
	if err != nil {
		b.Fatal(err)
	}
	msg, kib := []byte("message to sign"), make([]byte, 1024)
	gcm := client.Mechanism{Type: ck.CKM_AES_GCM, IV: make([]byte, 12), TagBits: 128}
	ops := []struct {
		name string
		call func() error
	}{
		{"RSA-2048-sign", func() error {
			_, err := bc.s.Sign(ctx, rsaPriv, client.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, msg)
			return err
		}},
		{"ECDSA-P256-sign", func() error {
			_, err := bc.s.Sign(ctx, ecPriv, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg)
			return err
		}},
		{"AES-256-GCM-1KiB", func() error { _, err := bc.s.Encrypt(ctx, aes, gcm, kib); return err }},
		{"HMAC-SHA256-1KiB", func() error {
			_, err := bc.s.Sign(ctx, hmac, client.Mechanism{Type: ck.CKM_SHA256_HMAC}, kib)
			return err
		}},
	}
	for _, op := range ops {
		for _, callers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/callers=%d", op.name, callers), func(b *testing.B) {
				runCallers(b, callers, op.call)
			})
		}
	}
}

// runCallers runs b.N calls spread over the given number of goroutines and
// reports ops/s.
func runCallers(b *testing.B, callers int, call func() error) {
	var next sync.WaitGroup
	work := make(chan struct{}, callers)
	errs := make(chan error, callers)
	b.ResetTimer()
	for range callers {
		next.Go(func() {
			for range work {
				if err := call(); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	next.Wait()
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkSyncConvergence measures the time from a key's creation on one
// HSM (min_nodes 1) to its presence on the other, through server-side
// synchronization; it reports p50 and p99.
func BenchmarkSyncConvergence(b *testing.B) {
	bc := newBenchCluster(b)
	ctx := b.Context()
	onA := dialCluster(b, bc.pki, bc.a.Addr())
	onB := dialCluster(b, bc.pki, bc.b.Addr())
	sa, err := onA.Login(ctx, "crypto-user", cuName, cuPW)
	if err != nil {
		b.Fatal(err)
	}
	sb, err := onB.Login(ctx, "crypto-user", cuName, cuPW)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	tmpl := []client.Attribute{client.Bool(ck.CKA_TOKEN, true), {Type: ck.CKA_VALUE_LEN, Value: []byte{32, 0, 0, 0, 0, 0, 0, 0}}}
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		id, err := sa.GenerateKey(ctx, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, tmpl)
		if err != nil {
			b.Fatal(err)
		}
		deadline := start.Add(10 * time.Second)
		for {
			if _, err := sb.GetAttributes(ctx, id, []ck.AttributeType{ck.CKA_LABEL}); err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("key %d not on node 2 after 10 s", id)
			}
			time.Sleep(50 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
