package dynamo

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// contextHeader carries the causal context on reads and writes.
const contextHeader = "X-Dynamo-Context"

// maxResponseBytes bounds what one answer may hold: a key holds at most
// 16 MiB of versions, which base64 turns into about 22 MiB.
const maxResponseBytes = 64 << 20

// userAgent identifies the library to the nodes.
const userAgent = "dynamo-go/1"

// RetryPolicy bounds the retries of a call. Attempt k (from 1) after the
// first waits a random duration in [0, min(Cap, Base*2^(k-1))) (exponential
// backoff with full jitter), or at least what a 503's Retry-After asks for,
// up to Cap. Failing over to a node the call has not tried yet after a
// connection error does not wait.
type RetryPolicy struct {
	// Attempts is the number of tries, the first included (1: no retry).
	Attempts int
	// Base is the backoff before the first retry (its upper bound).
	Base time.Duration
	// Cap bounds every backoff.
	Cap time.Duration
}

// DefaultRetryPolicy is the policy of a client made without [WithRetry]:
// five tries, backing off from 50 ms up to 2 s.
var DefaultRetryPolicy = RetryPolicy{Attempts: 5, Base: 50 * time.Millisecond, Cap: 2 * time.Second}

// DefaultTimeout bounds each HTTP attempt of a client made without
// [WithTimeout].
const DefaultTimeout = 10 * time.Second

// Client is a client of one cluster. It is safe for concurrent use; make one
// and share it.
type Client struct {
	bases   []string // node base URLs, without a trailing slash
	http    *http.Client
	token   string
	timeout time.Duration
	retry   RetryPolicy
	// preferred is the index of the node calls start with; it moves to the
	// next node when one cannot be reached.
	preferred atomic.Uint32
}

// settings collects what the Options set.
type settings struct {
	token      string
	caFile     string
	tlsConfig  *tls.Config
	httpClient *http.Client
	timeout    time.Duration
	retry      RetryPolicy
}

// Option configures a [Client] made by [New].
type Option func(*settings)

// WithToken makes every request carry "Authorization: Bearer token", for
// nodes started with --auth-dir (give the client token).
func WithToken(token string) Option {
	return func(s *settings) { s.token = token }
}

// WithCAFile trusts the CA certificates of a PEM file (the cluster's
// ca.crt) for https:// node URLs, instead of the system's roots.
func WithCAFile(path string) Option {
	return func(s *settings) { s.caFile = path }
}

// WithTLSConfig uses a TLS configuration for https:// node URLs. With
// [WithCAFile] too, the file's certificates become its RootCAs.
func WithTLSConfig(config *tls.Config) Option {
	return func(s *settings) { s.tlsConfig = config }
}

// WithHTTPClient sends the requests through client (its Transport, e.g. a
// proxy or instrumentation). It cannot be combined with [WithCAFile] or
// [WithTLSConfig]: configure TLS on the client's transport instead. The
// client's own Timeout, if any, applies on top of [WithTimeout].
func WithHTTPClient(client *http.Client) Option {
	return func(s *settings) { s.httpClient = client }
}

// WithTimeout bounds each HTTP attempt (default [DefaultTimeout]; 0: no
// bound). Bound a whole call, retries included, with the deadline of its
// context.Context.
func WithTimeout(d time.Duration) Option {
	return func(s *settings) { s.timeout = d }
}

// WithRetry replaces [DefaultRetryPolicy].
func WithRetry(policy RetryPolicy) Option {
	return func(s *settings) { s.retry = policy }
}

// New makes a client of the nodes at urls (e.g. "http://127.0.0.1:7000";
// https:// for nodes serving TLS). Calls start at the first URL and fail
// over to the next on connection errors.
func New(urls []string, opts ...Option) (*Client, error) {
	if len(urls) == 0 {
		return nil, errors.New("dynamo: New needs at least one node URL")
	}
	s := settings{timeout: DefaultTimeout, retry: DefaultRetryPolicy}
	for _, opt := range opts {
		opt(&s)
	}
	if s.retry.Attempts < 1 {
		return nil, fmt.Errorf("dynamo: RetryPolicy.Attempts is %d; it must be at least 1", s.retry.Attempts)
	}
	if s.retry.Base < 0 || s.retry.Cap < 0 || s.timeout < 0 {
		return nil, errors.New("dynamo: durations must not be negative")
	}
	c := &Client{token: s.token, timeout: s.timeout, retry: s.retry}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("dynamo: node URL %q: %w", raw, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("dynamo: node URL %q must look like http(s)://host:port", raw)
		}
		c.bases = append(c.bases, strings.TrimSuffix(u.String(), "/"))
	}
	if s.httpClient != nil {
		if s.caFile != "" || s.tlsConfig != nil {
			return nil, errors.New("dynamo: WithHTTPClient cannot be combined with WithCAFile or WithTLSConfig; configure TLS on that client's transport")
		}
		c.http = s.httpClient
		return c, nil
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 32
	if s.caFile != "" || s.tlsConfig != nil {
		config := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.tlsConfig != nil {
			config = s.tlsConfig.Clone()
		}
		if s.caFile != "" {
			pem, err := os.ReadFile(s.caFile)
			if err != nil {
				return nil, fmt.Errorf("dynamo: reading the CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("dynamo: %s holds no PEM certificate", s.caFile)
			}
			config.RootCAs = pool
		}
		transport.TLSClientConfig = config
	}
	c.http = &http.Client{Transport: transport}
	return c, nil
}

// request is one API call, sent as often as the retry policy allows.
type request struct {
	method string
	path   string // escaped, from /v1
	query  string // encoded, without "?"
	body   []byte
	// contentType is the body's Content-Type, if not empty. None is sent
	// otherwise (http.Client adds none): a PUT's is kept with the value.
	contentType string
	header      http.Header // more headers (a PUT's metadata)
	causal      string      // X-Dynamo-Context, if not empty
	// idempotent marks calls that may be sent again after a connection
	// error that may have happened after the node got them: reads, and
	// writes carrying a context (sending one twice makes at most a
	// sibling). Connection errors before sending are always retried.
	idempotent bool
}

// response is a node's answer, its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends req to the preferred node, retrying and failing over as the
// policy allows. It returns every answer but 503 (after the last attempt,
// as an *Error) and the transport errors.
func (c *Client) do(ctx context.Context, req *request) (*response, error) {
	sent := *req // its context may change between attempts
	req = &sent
	n := uint32(len(c.bases))
	node := c.preferred.Load() % n
	tried := make([]bool, n)
	var lastErr error
	var retryAfter time.Duration
	freshNode := false
	for attempt := 0; attempt < c.retry.Attempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if attempt > 0 && !freshNode {
			if err := sleep(ctx, c.backoff(attempt, retryAfter)); err != nil {
				return nil, err
			}
		}
		tried[node] = true
		resp, err := c.once(ctx, c.bases[node], req)
		if err == nil && resp.status != http.StatusServiceUnavailable {
			return resp, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !retryable(err, req.idempotent) {
				return nil, err
			}
			// The node is unreachable: later calls start at the next one.
			next := (node + 1) % n
			c.preferred.CompareAndSwap(node, next)
			node = next
			freshNode = !tried[node]
			retryAfter = 0
			lastErr = err
			continue
		}
		// 503: the node is up but could not do it now. Another coordinator
		// may do better (it may see other replicas); wait either way.
		lastErr = apiError(resp.status, resp.body)
		retryAfter = parseRetryAfter(resp.header.Get("Retry-After"))
		if retry := resp.header.Get(contextHeader); retry != "" && req.method != http.MethodGet {
			// The write left its version on some replicas; retried with
			// this context it replaces that version instead of adding a
			// sibling.
			req.causal = retry
			req.idempotent = true
		}
		node = (node + 1) % n
		freshNode = false
	}
	var apiErr *Error
	if errors.As(lastErr, &apiErr) {
		return nil, apiErr
	}
	return nil, fmt.Errorf("%w: no node answered after %d attempts: %w", ErrUnavailable, c.retry.Attempts, lastErr)
}

// once sends req to one node and reads the answer.
func (c *Client) once(ctx context.Context, base string, req *request) (*response, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	target := base + req.path
	if req.query != "" {
		target += "?" + req.query
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return nil, &permanentError{err}
	}
	for name, values := range req.header {
		hr.Header[name] = values
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", userAgent)
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	if req.causal != "" {
		hr.Header.Set(contextHeader, req.causal)
	}
	res, err := c.http.Do(hr)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("dynamo: reading the answer of %s: %w", base, err)
	}
	if len(data) > maxResponseBytes {
		return nil, &permanentError{fmt.Errorf("dynamo: the answer of %s exceeds %d bytes", base, maxResponseBytes)}
	}
	return &response{status: res.StatusCode, header: res.Header, body: data}, nil
}

// permanentError is a failure retrying cannot fix.
type permanentError struct{ err error }

// Error is the underlying error's text.
func (e *permanentError) Error() string { return e.err.Error() }

// Unwrap is the underlying error.
func (e *permanentError) Unwrap() error { return e.err }

// retryable reports whether a transport error may be retried: always when
// the request did not leave (no connection), else for idempotent requests,
// but never for certificate failures.
func retryable(err error, idempotent bool) bool {
	var permanent *permanentError
	var verify *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	switch {
	case errors.As(err, &permanent), errors.As(err, &verify), errors.As(err, &unknownAuthority),
		errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &header):
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return idempotent
}

// backoff is the wait before attempt (1 for the first retry).
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	ceiling := c.retry.Base
	for i := 1; i < attempt && ceiling < c.retry.Cap; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, c.retry.Cap)
	var wait time.Duration
	if ceiling > 0 {
		wait = rand.N(ceiling)
	}
	if retryAfter > wait {
		wait = min(retryAfter, max(c.retry.Cap, wait))
	}
	return wait
}

// parseRetryAfter reads a Retry-After header in seconds (0 if absent or
// not a number of seconds).
func parseRetryAfter(value string) time.Duration {
	seconds, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || seconds < 0 {
		return 0
	}
	return time.Duration(seconds) * time.Second
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
