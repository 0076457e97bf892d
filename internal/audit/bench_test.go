package audit

import (
	"bytes"
	"os"
	"testing"
)

// BenchmarkAppend measures the hot path: one goroutine appending. Once the
// queue is full Append waits for the writer, so ns/op is bounded below by
// the writer's throughput; records/s reports it.
func BenchmarkAppend(b *testing.B) {
	l, err := Open(b.Context(), Config{Path: tempLogB(b)})
	if err != nil {
		b.Fatal(err)
	}
	ev := Event{User: "alice", Role: "crypto-user", Session: 42, Op: "key.sign", Object: 7, Result: "ok"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ev.Object = uint64(i)
		l.Append(ev)
	}
	if err := l.Close(); err != nil { // drains the queue: count it
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAppendParallel appends from GOMAXPROCS goroutines.
func BenchmarkAppendParallel(b *testing.B) {
	l, err := Open(b.Context(), Config{Path: tempLogB(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ev := Event{User: "alice", Role: "crypto-user", Session: 42, Op: "key.sign", Object: 7, Result: "ok"}
		for pb.Next() {
			l.Append(ev)
		}
	})
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAppendSync is one fsync per record from a single caller.
func BenchmarkAppendSync(b *testing.B) {
	l, err := Open(b.Context(), Config{Path: tempLogB(b)})
	if err != nil {
		b.Fatal(err)
	}
	ev := Event{User: "admin", Role: "admin", Op: "user.create", Target: "bob", Result: "ok"}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.AppendSync(b.Context(), ev); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkVerify reports verification throughput.
func BenchmarkVerify(b *testing.B) {
	const n = 10_000
	data := join(chainLines(b, n)...)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if got, _, err := Verify(bytes.NewReader(data), nil); err != nil || got != n {
			b.Fatalf("Verify = %d, %v", got, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

func tempLogB(b *testing.B) string {
	f, err := os.CreateTemp(b.TempDir(), "audit-*.log")
	if err != nil {
		b.Fatal(err)
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return name
}
