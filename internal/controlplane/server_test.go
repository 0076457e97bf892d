package controlplane

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// The API's HTTP server bounds what a client that never authenticates can
// hold: a request's body, its headers, the time to send a request, and an
// idle connection.
func TestHTTPServerLimits(t *testing.T) {
	e := newTestEnvWith(t, func(c *Config) {
		c.ReadTimeout, c.WriteTimeout, c.IdleTimeout = 200*time.Millisecond, time.Second, 200*time.Millisecond
	})
	addr := strings.TrimPrefix(e.http.URL, "http://")
	big := bytes.Repeat([]byte(" "), maxBody+1)

	t.Run("limits set", func(t *testing.T) {
		srv := e.s.HTTPServer()
		if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
			t.Fatalf("server limits %+v", srv)
		}
	})
	for _, c := range []struct {
		name string
		body io.Reader
	}{
		{"body too large", bytes.NewReader(big)},
		{"body too large, chunked", io.MultiReader(bytes.NewReader(big))}, // no length known: chunked
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.http.URL+"/", c.body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Target", TargetPrefix+"DescribeClusters")
			SignRequest(req, big, testCred, "us-east-1", time.Now())
			err2 := e.do(req, nil)
			wantErr(t, err2, "RequestEntityTooLargeException")
			if err2.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413", err2.Status)
			}
		})
	}
	// The largest request a client can make fits: two certificates of
	// 20000 characters, each JSON-escaped (as Python's json does).
	t.Run("largest InitializeCluster", func(t *testing.T) {
		cert := strings.Repeat(`\u20ac`, maxCertLen)
		body := []byte(`{"ClusterId":"cluster-aaaaaaaaaaa","SignedCert":"` + cert + `","TrustAnchor":"` + cert + `"}`)
		req := e.request("InitializeCluster", body)
		SignRequest(req, body, testCred, "us-east-1", time.Now())
		wantErr(t, e.do(req, nil), "CloudHsmResourceNotFoundException")
	})
	t.Run("headers too large", func(t *testing.T) {
		req := e.request("DescribeClusters", []byte(`{}`))
		req.Header.Set("X-Padding", strings.Repeat("a", 2*maxHeaderBytes))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
	})
	// A client that stops sending, or stays idle, is disconnected.
	for _, c := range []struct{ name, send string }{
		{"headers never finished", "POST / HTTP/1.1\r\nHost: " + addr + "\r\nX-Amz-Target: "},
		{"body never finished", "POST / HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/x-amz-json-1.1\r\n" +
			"X-Amz-Target: " + TargetPrefix + "DescribeClusters\r\nContent-Length: 1000\r\n\r\n{\"Filters\":"},
		{"idle after a request", "POST / HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/x-amz-json-1.1\r\n" +
			"X-Amz-Target: " + TargetPrefix + "DescribeClusters\r\nContent-Length: 2\r\n\r\n{}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, c.send); err != nil {
				t.Fatal(err)
			}
			// Whatever the server answers, it must then close the
			// connection; the deadline only keeps a failing test short.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.Copy(io.Discard, bufio.NewReader(conn))
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the server kept the connection open")
			}
		})
	}
}

// A full replay cache throttles changing requests with the AWS shape;
// reads go on.
func TestReplayCacheFullThrottles(t *testing.T) {
	e := newTestEnvWith(t, func(c *Config) { c.ReplayCacheSize = 1 })
	e.createCluster()
	err := e.call("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}}, nil)
	wantErr(t, err, "ThrottlingException")
	if err.Status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", err.Status)
	}
	e.must("DescribeClusters", DescribeClustersRequest{}, nil)
}
