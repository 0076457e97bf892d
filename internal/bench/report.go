package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Schema names the JSON layout of a Report; it changes only when a field
// changes meaning or goes away (fields may be added).
const Schema = "coffer-bench/1"

// Report is a run's result: where it ran, against what, and its cells.
type Report struct {
	Schema   string      `json:"schema"`
	Started  time.Time   `json:"started"`
	Machine  Machine     `json:"machine"`
	Go       GoInfo      `json:"go"`
	Target   TargetInfo  `json:"target"`
	Keys     string      `json:"keys"`      // "token" or "session": what the sign and encrypt operations use
	HeldKeys int         `json:"held_keys"` // token keys held through the run (--hold-keys)
	Duration float64     `json:"duration_seconds"`
	Cells    []Cell      `json:"cells"`
	Complete bool        `json:"complete"` // false: the run was cut short
	Ops      []OpSummary `json:"ops"`
}

// Machine is the computer the benchmark ran on.
type Machine struct {
	OS    string `json:"os"`
	Arch  string `json:"arch"`
	CPUs  int    `json:"cpus"`
	Model string `json:"cpu_model,omitempty"`
}

// GoInfo is the Go runtime and cryptography of the benchmark process.
type GoInfo struct {
	Version string `json:"version"`
	// Crypto is the backend of crypto/*: "boringcrypto" or "go".
	Crypto  string `json:"crypto_backend"`
	FIPS140 bool   `json:"fips140"` // crypto/fips140.Enabled
}

// TargetInfo says what was measured.
type TargetInfo struct {
	Kind        string   `json:"kind"` // "coffer-client" or "pkcs11"
	Description string   `json:"description"`
	Module      string   `json:"module,omitempty"` // pkcs11: the library's path
	Slot        *uint    `json:"slot,omitempty"`   // pkcs11
	HSMs        []HSMRef `json:"hsms,omitempty"`   // coffer-client
}

// HSMRef is one HSM of a measured cluster.
type HSMRef struct {
	Address string `json:"address"`
	Up      bool   `json:"up"`
	Version string `json:"version,omitempty"`
	FIPS    bool   `json:"fips"`
}

// OpSummary describes an operation of the run.
type OpSummary struct {
	Name string `json:"name"`
	Desc string `json:"description"`
}

// Cell is one operation at one thread count.
type Cell struct {
	Op         string    `json:"op"`
	Threads    int       `json:"threads"`
	Keys       string    `json:"keys"` // "token" or "session"
	Ops        uint64    `json:"ops"`
	Errors     uint64    `json:"errors"`
	FirstError string    `json:"first_error,omitempty"`
	Seconds    float64   `json:"seconds"`
	OpsPerSec  float64   `json:"ops_per_second"`
	Latency    Latencies `json:"latency_us"`
	// CPUPerOp is the CPU time (user and system) the coffer bench process
	// used in the cell, over its operations, in µs: the client's cost
	// (with --pkcs11 the module's and, for an in-process token such as
	// SoftHSMv2, the cryptography's too). 0 where it is not measured.
	CPUPerOp    float64 `json:"cpu_us_per_op,omitempty"`
	Interrupted bool    `json:"interrupted,omitempty"`
}

// Latencies of the operations that succeeded, in microseconds.
type Latencies struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func micros(d time.Duration) float64 { return math.Round(float64(d)/1e1) / 1e2 }

func newCell(op Op, threads int, tokenKeys bool, elapsed time.Duration, h *Histogram, errs uint64) Cell {
	c := Cell{
		Op: op.Name, Threads: threads, Keys: op.Keys(tokenKeys), Ops: h.Count(), Errors: errs,
		Seconds: math.Round(elapsed.Seconds()*1e4) / 1e4,
		Latency: Latencies{Mean: micros(h.Mean()), P50: micros(h.Quantile(0.5)), P99: micros(h.Quantile(0.99)),
			P999: micros(h.Quantile(0.999)), Max: micros(h.Max())},
	}
	if elapsed > 0 {
		c.OpsPerSec = math.Round(float64(h.Count())/elapsed.Seconds()*10) / 10
	}
	return c
}

// NewReport starts the report of a run of c against target.
func NewReport(started time.Time, target TargetInfo, c Config) *Report {
	r := &Report{
		Schema: Schema, Started: started.UTC(), Machine: machine(), Go: goInfo(), Target: target,
		Keys: "session", HeldKeys: c.HoldKeys, Duration: c.Duration.Seconds(), Cells: []Cell{},
	}
	if c.TokenKeys {
		r.Keys = "token"
	}
	for _, o := range c.Ops {
		r.Ops = append(r.Ops, OpSummary{Name: o.Name, Desc: o.Desc})
	}
	return r
}

func machine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// ReadReport reads a report written with WriteJSON.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("%s: schema %q, want %q", path, r.Schema, Schema)
	}
	return &r, nil
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r's cells as a table.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "target: %s\n", r.Target.Description)
	held := ""
	if r.HeldKeys > 0 {
		held = fmt.Sprintf("; %d keys held", r.HeldKeys)
	}
	fmt.Fprintf(w, "machine: %s/%s, %d CPUs%s; %s, crypto %s%s; keys: %s objects%s; %gs per cell\n",
		r.Machine.OS, r.Machine.Arch, r.Machine.CPUs, prefixed(", ", r.Machine.Model), r.Go.Version, r.Go.Crypto,
		map[bool]string{true: " (FIPS 140-3 mode)"}[r.Go.FIPS140], r.Keys, held, r.Duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	width := opWidth(r.Cells)
	fmt.Fprintf(tw, "%-*s\tthreads\tkeys\tops/s\tp50 µs\tp99 µs\tp99.9 µs\tCPU µs/op\tops\terrors\t\n", width, "op")
	for _, c := range r.Cells {
		mark := ""
		if c.Interrupted {
			mark = " (cut short)"
		}
		fmt.Fprintf(tw, "%-*s\t%d\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d%s\t\n",
			width, c.Op, c.Threads, c.Keys, c.OpsPerSec, c.Latency.P50, c.Latency.P99, c.Latency.P999, c.CPUPerOp, c.Ops, c.Errors, mark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.Cells {
		if c.FirstError != "" {
			fmt.Fprintf(w, "%s at %d threads: %d errors, the first: %s\n", c.Op, c.Threads, c.Errors, c.FirstError)
		}
	}
	return nil
}

// opWidth is the width of the op column: the table is right-aligned but
// for it.
func opWidth(cells []Cell) int {
	n := len("op")
	for _, c := range cells {
		n = max(n, len(c.Op))
	}
	return n
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// Comparison is one cell beside the same cell (op, threads, keys) of an
// earlier run.
type Comparison struct {
	Op        string
	Threads   int
	Keys      string
	OpsPerSec float64 // this run
	Before    float64 // the earlier run
	Ratio     float64 // OpsPerSec / Before; 0 when Before is 0
	P99       float64 // µs, this run
	P99Before float64
	P99Ratio  float64 // P99 / P99Before; 0 when P99Before is 0
}

// Compare matches r's cells with those of an earlier run; cells only one
// of them has are left out.
func Compare(r, earlier *Report) []Comparison {
	type key struct {
		op      string
		threads int
		keys    string
	}
	before := map[key]Cell{}
	for _, c := range earlier.Cells {
		before[key{c.Op, c.Threads, c.Keys}] = c
	}
	var out []Comparison
	for _, c := range r.Cells {
		b, ok := before[key{c.Op, c.Threads, c.Keys}]
		if !ok {
			continue
		}
		cmp := Comparison{Op: c.Op, Threads: c.Threads, Keys: c.Keys, OpsPerSec: c.OpsPerSec, Before: b.OpsPerSec,
			P99: c.Latency.P99, P99Before: b.Latency.P99}
		if b.OpsPerSec > 0 {
			cmp.Ratio = c.OpsPerSec / b.OpsPerSec
		}
		if b.Latency.P99 > 0 {
			cmp.P99Ratio = c.Latency.P99 / b.Latency.P99
		}
		out = append(out, cmp)
	}
	return out
}

// WriteComparison writes the comparison of r with earlier as a table.
func WriteComparison(w io.Writer, r, earlier *Report) error {
	cmps := Compare(r, earlier)
	fmt.Fprintf(w, "compared with %s (%s, %s)\n", earlier.Target.Description, earlier.Started.Format(time.RFC3339), earlier.Keys+" keys")
	if len(cmps) == 0 {
		_, err := fmt.Fprintln(w, "no cell (op, threads, keys) in common")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	width := opWidth(r.Cells)
	fmt.Fprintf(tw, "%-*s\tthreads\tkeys\tops/s\tbefore\tratio\tp99 µs\tbefore\tratio\t\n", width, "op")
	for _, c := range cmps {
		fmt.Fprintf(tw, "%-*s\t%d\t%s\t%.1f\t%.1f\t%s\t%.1f\t%.1f\t%s\t\n", width, c.Op, c.Threads, c.Keys,
			c.OpsPerSec, c.Before, ratio(c.Ratio), c.P99, c.P99Before, ratio(c.P99Ratio))
	}
	return tw.Flush()
}

func ratio(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}
