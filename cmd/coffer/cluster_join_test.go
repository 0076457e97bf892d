package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/client"
)

// TestClusterJoin: a fourth HSM added to a running cluster (`coffer hsm init`
// again with one more --node, then `coffer hsm run` of it; the running HSMs
// are not restarted) ends up with every token object and becomes ready; an
// HSM whose data dir holds another cluster's store refuses to join.
func TestClusterJoin(t *testing.T) {
	c := newCluster(t, 1, 2, 3)
	c.startAll(t, 1, 2, 3)
	c.activate(t, 1)
	alice := loginT(t, c.dial(t, 1, 1), "crypto-user", testCU, testCUPW)
	var want []client.ObjectID
	for i := range 20 {
		id, err := alice.GenerateKey(t.Context(), mechAESKeyGen, aesTokenTemplate(fmt.Sprintf("join-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	pub, priv := genECPair(t, alice, "join-ec")
	want = append(want, pub, priv)

	t.Run("a fourth HSM joins", func(t *testing.T) {
		c.init(t, 4)
		f, err := readHSMFile(c.configPath(4))
		if err != nil {
			t.Fatal(err)
		}
		if f.MaskingKey != "clone" || len(f.Peers) != 3 {
			t.Fatalf("hsm-4.json: masking_key %q, %d peers; want clone and 3", f.MaskingKey, len(f.Peers))
		}
		start := time.Now()
		c.start(t, 4)
		// The running HSMs must let it clone the masking key and sync; if
		// they refuse it, say so now rather than at the deadline.
		pollUntil(t, "HSM 4 ready", func() error {
			if i := strings.Index(c.output(t, 4), "is not a peer of this HSM"); i >= 0 {
				out := c.output(t, 4)
				t.Fatalf("the running HSMs refuse HSM 4 (they know only the peers of their config at start):\n%s",
					out[strings.LastIndexByte(out[:i], '\n')+1:i+len("is not a peer of this HSM")])
			}
			return c.readyErr(t, 4)
		})
		ready := time.Since(start)
		s := c.loginWhenKnown(t, 4, "crypto-user", testCU, testCUPW)
		have, err := listTokenObjects(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		if m := missingIDs(want, have); len(m) > 0 {
			t.Errorf("HSM 4 reported ready lacking %d of %d token objects", len(m), len(want))
		}
		c.holdsAll(t, 4, s, want)
		t.Logf("HSM 4 ready %s after its start, holding all %d token objects", ready.Round(time.Millisecond), len(want))
		// It works as a member: a signature made there verifies on HSM 1.
		sig, err := s.Sign(t.Context(), priv, mechECDSASHA256, []byte("from HSM 4"))
		if err != nil {
			t.Fatalf("sign on HSM 4: %v", err)
		}
		if err := alice.Verify(t.Context(), pub, mechECDSASHA256, []byte("from HSM 4"), sig); err != nil {
			t.Errorf("HSM 1 rejects HSM 4's signature: %v", err)
		}
		// And what is made there reaches the others.
		id, err := s.GenerateKey(t.Context(), mechAESKeyGen, aesTokenTemplate("made-on-4"))
		if err != nil {
			t.Fatalf("generate on HSM 4: %v", err)
		}
		c.holdsAll(t, 1, alice, []client.ObjectID{id})
	})

	t.Run("another cluster's store is refused", func(t *testing.T) {
		// Cluster B: its own init (the same cluster id, its own masking
		// key), with an HSM 2 that runs once to create its store.
		b := newCluster(t, 2)
		b.start(t, 2)
		b.waitReady(t, 2)
		b.stop(t, 2)

		// HSM 2 of this cluster, pointed at B's HSM 2 data dir, as after a
		// wrong volume mount: same node id, another cluster's masking key.
		c.stop(t, 2)
		foreign := filepath.Join(c.dir, "foreign-hsm-2.json") // not hsm-*.json: init must not see it
		f, err := readRawHSMFile(c.configPath(2))
		if err != nil {
			t.Fatal(err)
		}
		f.DataDir = filepath.Join(b.dir, "hsm-2", "data")
		writeTestHSMFile(t, foreign, f)
		p := c.startConfig(t, 2, foreign)
		select {
		case <-p.done:
		case <-time.After(clusterWaitLimit):
			t.Fatalf("HSM 2 with another cluster's store still runs after %s", clusterWaitLimit)
		}
		out := c.output(t, 2)
		if p.err == nil || !strings.Contains(out, "another cluster") {
			t.Fatalf("HSM 2 with another cluster's store: exit %v, want a non-zero exit saying \"another cluster\"; output:\n%s", p.err, out)
		}
		t.Logf("refused: %s", lastLogLine(out))

		// Its own store still works.
		c.start(t, 2)
		c.waitReady(t, 2)
		c.holdsAll(t, 2, c.loginWhenKnown(t, 2, "crypto-user", testCU, testCUPW), want)
	})
}

func lastLogLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}
