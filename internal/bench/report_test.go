package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func cell(op string, threads int, keys string, opsPerSec, p99 float64) Cell {
	return Cell{Op: op, Threads: threads, Keys: keys, Ops: uint64(opsPerSec), OpsPerSec: opsPerSec, Seconds: 1, Latency: Latencies{P99: p99}}
}

func TestCompareMatchesOpThreadsAndKeys(t *testing.T) {
	now := &Report{Cells: []Cell{
		cell("ecdsa-p256", 1, "session", 3000, 400),
		cell("ecdsa-p256", 8, "session", 12000, 900),
		cell("ecdsa-p256", 8, "token", 10000, 1000), // the earlier run has no token cell
		cell("hmac-sha256-1k", 1, "session", 500, 0),
		cell("aes256-gcm-1k", 1, "session", 100, 10),
	}}
	before := &Report{Cells: []Cell{
		cell("ecdsa-p256", 8, "session", 6000, 1800),
		cell("ecdsa-p256", 1, "session", 1500, 200),
		cell("hmac-sha256-1k", 1, "session", 0, 0), // nothing succeeded then
		cell("rsa2048-sign", 1, "session", 700, 100),
	}}
	got := Compare(now, before)
	want := []Comparison{
		{Op: "ecdsa-p256", Threads: 1, Keys: "session", OpsPerSec: 3000, Before: 1500, Ratio: 2, P99: 400, P99Before: 200, P99Ratio: 2},
		{Op: "ecdsa-p256", Threads: 8, Keys: "session", OpsPerSec: 12000, Before: 6000, Ratio: 2, P99: 900, P99Before: 1800, P99Ratio: 0.5},
		{Op: "hmac-sha256-1k", Threads: 1, Keys: "session", OpsPerSec: 500},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d comparisons, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("comparison %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	var out bytes.Buffer
	if err := WriteComparison(&out, now, before); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"ecdsa-p256", "2.00x", "0.50x"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("comparison table lacks %q:\n%s", line, out.String())
		}
	}
	if !strings.Contains(out.String(), "500.0     0.0      -") {
		t.Errorf("a ratio to nothing is not shown as -:\n%s", out.String())
	}
	out.Reset()
	if err := WriteComparison(&out, &Report{Cells: []Cell{cell("ed25519", 1, "session", 1, 1)}}, before); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no cell (op, threads, keys) in common") {
		t.Errorf("disjoint runs: %s", out.String())
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	ops, err := ParseOps([]string{"ecdsa-p256", "aes-keygen-token"})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReport(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), TargetInfo{Kind: "pkcs11", Description: "x"},
		Config{Ops: ops, Threads: []int{1}, Duration: 2 * time.Second, TokenKeys: true})
	var h Histogram
	for i := range 1000 {
		h.Record(time.Duration(100+i) * time.Microsecond)
	}
	r.Cells = append(r.Cells, newCell(ops[0], 4, true, 2*time.Second, &h, 3))
	r.Complete = true
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(b.Bytes(), &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "started", "machine", "go", "target", "keys", "duration_seconds", "cells", "complete", "ops"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("the JSON lacks %q", k)
		}
	}
	c := generic["cells"].([]any)[0].(map[string]any)
	if c["ops_per_second"] != 500.0 || c["errors"] != 3.0 || c["keys"] != "token" {
		t.Errorf("cell %v", c)
	}
	lat := c["latency_us"].(map[string]any)
	if p := lat["p50"].(float64); p < 590 || p > 610 {
		t.Errorf("p50 %v µs, want about 600", p)
	}
	path := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Keys != "token" || len(back.Cells) != 1 || back.Cells[0] != r.Cells[0] || back.Go != r.Go {
		t.Errorf("read back %+v", back)
	}
	if err := os.WriteFile(path, []byte(`{"schema":"other/2"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadReport(path); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("another schema: %v", err)
	}
}

func TestParseOps(t *testing.T) {
	ops, err := ParseOps([]string{"aes-keygen-token", " ecdsa-p256"})
	if err != nil || len(ops) != 2 || ops[0].Name != "aes-keygen-token" || ops[1].Name != "ecdsa-p256" {
		t.Fatalf("ParseOps: %v %v", ops, err)
	}
	if ops[0].Keys(false) != "token" || ops[1].Keys(false) != "session" || ops[1].Keys(true) != "token" {
		t.Error("keys reported wrong")
	}
	if all, err := ParseOps([]string{"all"}); err != nil || len(all) != len(Ops()) {
		t.Errorf("all: %d %v", len(all), err)
	}
	for _, bad := range [][]string{{"rsa1024-sign"}, {"ed25519", "ed25519"}, {}} {
		if _, err := ParseOps(bad); err == nil {
			t.Errorf("ParseOps(%q) succeeded", bad)
		}
	}
}
