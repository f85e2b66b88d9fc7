package dynamo_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dynamo.dev/dynamo"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()
	c := secure(t)
	ctx := testContext(t)
	k := key(t, "k")
	cases := []struct {
		name   string
		token  string
		want   error
		status int
	}{
		{"no token", "", dynamo.ErrUnauthorized, 401},
		{"unknown token", strings.Repeat("0", 64), dynamo.ErrUnauthorized, 401},
		{"admin token on /v1/kv", tokens.Admin, dynamo.ErrForbidden, 403},
	}
	for _, tc := range cases {
		client := newClient(t, c.URLs(), dynamo.WithCAFile(c.CAFile), dynamo.WithToken(tc.token))
		start := time.Now()
		_, err := client.Put(ctx, k, []byte("v"))
		var apiErr *dynamo.Error
		if !errors.Is(err, tc.want) || !errors.As(err, &apiErr) || apiErr.Status != tc.status {
			t.Errorf("%s: Put returned %v, want %v (%d)", tc.name, err, tc.want, tc.status)
		}
		if _, err := client.Get(ctx, k); !errors.Is(err, tc.want) {
			t.Errorf("%s: Get returned %v, want %v", tc.name, err, tc.want)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("%s: took %v; a 4xx must not be retried", tc.name, elapsed)
		}
	}

	client := newClient(t, c.URLs(), dynamo.WithCAFile(c.CAFile), dynamo.WithToken(tokens.Client))
	mustPut(t, client, k, "with the client token")
	if got := strs(mustGet(t, client, k).Values); !slices.Equal(got, []string{"with the client token"}) {
		t.Fatalf("read %q with the client token", got)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	c := secure(t)
	ctx := testContext(t)
	k := key(t, "k")
	for _, url := range c.URLs() {
		if !strings.HasPrefix(url, "https://") {
			t.Fatalf("node URL %s is not https", url)
		}
	}

	client := newClient(t, c.URLs(), dynamo.WithCAFile(c.CAFile), dynamo.WithToken(tokens.Client))
	mustPut(t, client, k, "over TLS")
	if got := strs(mustGet(t, client, k).Values); !slices.Equal(got, []string{"over TLS"}) {
		t.Fatalf("read %q over TLS", got)
	}

	// WithTLSConfig works as well.
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	viaConfig := newClient(t, c.URLs(), dynamo.WithTLSConfig(&tls.Config{RootCAs: pool}), dynamo.WithToken(tokens.Client))
	if got := strs(mustGet(t, viaConfig, k).Values); !slices.Equal(got, []string{"over TLS"}) {
		t.Fatalf("read %q with WithTLSConfig", got)
	}

	// Without the CA the node's certificate is refused, at once (no
	// retry: a certificate does not get better).
	rec := newRecorder()
	untrusting := newClient(t, c.URLs(), dynamo.WithToken(tokens.Client), dynamo.WithHTTPClient(rec.client()))
	_, err = untrusting.Get(ctx, k)
	var verify *tls.CertificateVerificationError
	if !errors.As(err, &verify) {
		t.Fatalf("Get without the CA: %v, want a certificate verification error", err)
	}
	if sent := rec.take(); len(sent) != 1 {
		t.Fatalf("without the CA %d requests were sent, want 1: %+v", len(sent), sent)
	}

	// Plain HTTP to a TLS node fails.
	plain := newClient(t, []string{strings.Replace(c.Nodes[0].URL(), "https://", "http://", 1)},
		dynamo.WithToken(tokens.Client), dynamo.WithRetry(dynamo.RetryPolicy{Attempts: 1}))
	if _, err := plain.Get(ctx, k); err == nil {
		t.Fatal("plain HTTP to a TLS node succeeded")
	}

	// A CA file that holds no certificate is refused by New.
	bogus := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(bogus, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dynamo.New(c.URLs(), dynamo.WithCAFile(bogus)); err == nil {
		t.Fatal("New accepted a CA file without a certificate")
	}
	if _, err := dynamo.New(c.URLs(), dynamo.WithCAFile(c.CAFile), dynamo.WithHTTPClient(http.DefaultClient)); err == nil {
		t.Fatal("New accepted WithCAFile with WithHTTPClient")
	}
}
