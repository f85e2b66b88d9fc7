package dynamo_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"dynamo.dev/dynamo"
	"dynamo.dev/dynamo/internal/testcluster"
)

// clusters holds the clusters the tests share: "shared" (plain, never
// disturbed) and "secure" (auth and TLS). Tests that stop nodes start
// their own (ownCluster).
var clusters = testcluster.NewPool()

func TestMain(m *testing.M) {
	code := m.Run()
	if code != 0 {
		clusters.KeepLogs()
	}
	if dir := clusters.StopAll(); dir != "" {
		fmt.Fprintf(os.Stderr, "node logs kept in %s\n", dir)
	}
	os.Exit(code)
}

// shared is the plain cluster most tests share; tests must not stop its
// nodes and should use keys of their own (see key).
func shared(t *testing.T) *testcluster.Cluster {
	t.Helper()
	return clusters.Get(t, "shared", func(string) (testcluster.Options, error) {
		return testcluster.Options{}, nil
	})
}

// ownCluster starts a cluster for the calling test alone, stopped when
// it ends (its logs kept and shown when it failed).
func ownCluster(t *testing.T, opts testcluster.Options) *testcluster.Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "dynamo-go-test-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := testcluster.Start(dir, opts)
	if err != nil {
		os.RemoveAll(dir) // the error holds the log's tail
		t.Fatalf("starting a cluster: %v", err)
	}
	t.Cleanup(func() {
		c.Stop()
		if !t.Failed() {
			os.RemoveAll(dir)
			return
		}
		t.Logf("node logs kept in %s", dir)
		for _, n := range c.Nodes {
			t.Logf("%s log tail:\n%s", n.ID, c.LogTail(n, 15))
		}
	})
	return c
}

// tokens of the secure cluster, set when it starts.
var tokens testcluster.Tokens

// secure is a cluster with --auth-dir and --tls-dir.
func secure(t *testing.T) *testcluster.Cluster {
	t.Helper()
	return clusters.Get(t, "secure", func(dir string) (testcluster.Options, error) {
		var err error
		if tokens, err = testcluster.WriteAuthDir(filepath.Join(dir, "auth")); err != nil {
			return testcluster.Options{}, err
		}
		return testcluster.Options{AuthDir: filepath.Join(dir, "auth"), TLS: true}, nil
	})
}

// key is a key of this test alone.
func key(t *testing.T, name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("go-test/%s/%s-%s", t.Name(), name, hex.EncodeToString(b[:]))
}

// newClient is a client of urls with quick retries unless opts say
// otherwise.
func newClient(t *testing.T, urls []string, opts ...dynamo.Option) *dynamo.Client {
	t.Helper()
	all := append([]dynamo.Option{dynamo.WithRetry(dynamo.RetryPolicy{Attempts: 5, Base: 20 * time.Millisecond, Cap: 500 * time.Millisecond})}, opts...)
	c, err := dynamo.New(urls, all...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// testContext is a context bounded by a generous deadline.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sent is one request a recorder saw.
type sent struct {
	Method, Host, Path string
	Query              string      // the raw query, without "?"
	Header             http.Header // the headers the client set
	Status             int         // 0 for a transport error
	Err                error
}

// recorder is an http.RoundTripper that records every request.
type recorder struct {
	next http.RoundTripper
	// after, if set, runs after each request.
	after func(sent)

	mu   sync.Mutex
	sent []sent
}

func newRecorder() *recorder {
	return &recorder{next: http.DefaultTransport.(*http.Transport).Clone()}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	s := sent{Method: req.Method, Host: req.URL.Host, Path: req.URL.EscapedPath(), Query: req.URL.RawQuery, Header: req.Header.Clone(), Err: err}
	if resp != nil {
		s.Status = resp.StatusCode
	}
	r.mu.Lock()
	r.sent = append(r.sent, s)
	after := r.after
	r.mu.Unlock()
	if after != nil {
		after(s)
	}
	return resp, err
}

// take returns and forgets the requests recorded so far.
func (r *recorder) take() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

func (r *recorder) client() *http.Client { return &http.Client{Transport: r} }

// mustGet reads key or fails the test.
func mustGet(t *testing.T, c *dynamo.Client, key string, opts ...dynamo.ReadOption) *dynamo.Versions {
	t.Helper()
	v, err := c.Get(testContext(t), key, opts...)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

// mustPut writes key or fails the test.
func mustPut(t *testing.T, c *dynamo.Client, key, value string, opts ...dynamo.WriteOption) string {
	t.Helper()
	ctx, err := c.Put(testContext(t), key, []byte(value), opts...)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if ctx == "" {
		t.Fatalf("Put(%q) returned no context", key)
	}
	return ctx
}

// strs turns values into strings, for comparisons.
func strs(values [][]byte) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}
