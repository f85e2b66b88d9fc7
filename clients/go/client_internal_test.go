package dynamo

import (
	"testing"
	"time"
)

func TestEscape(t *testing.T) {
	cases := map[string]string{
		"users/42":      "users%2F42",
		"a b":           "a%20b",
		"café":          "caf%C3%A9",
		"A-Z_a.z~0/9":   "A-Z_a%2Ez~0%2F9",
		"a/../b":        "a%2F%2E%2E%2Fb",
		"?#&=+%":        "%3F%23%26%3D%2B%25",
		"\x00\xff":      "%00%FF",
		"50%/off/ünï?x": "50%25%2Foff%2F%C3%BCn%C3%AF%3Fx",
	}
	for in, want := range cases {
		if got := escape(in); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackoffIsBoundedFullJitter(t *testing.T) {
	c := &Client{retry: RetryPolicy{Attempts: 10, Base: 10 * time.Millisecond, Cap: 80 * time.Millisecond}}
	for attempt := 1; attempt <= 8; attempt++ {
		ceiling := min(10*time.Millisecond<<(attempt-1), 80*time.Millisecond)
		var largest time.Duration
		for range 2000 {
			d := c.backoff(attempt, 0)
			if d < 0 || d >= ceiling {
				t.Fatalf("attempt %d waited %v, want within [0, %v)", attempt, d, ceiling)
			}
			largest = max(largest, d)
		}
		if largest < ceiling/2 {
			t.Errorf("attempt %d: the largest of 2000 waits is %v, want the range up to %v used", attempt, largest, ceiling)
		}
	}
	// Retry-After raises the wait, up to Cap.
	if d := c.backoff(1, 50*time.Millisecond); d != 50*time.Millisecond {
		t.Errorf("Retry-After 50ms gave %v", d)
	}
	if d := c.backoff(1, time.Second); d != 80*time.Millisecond {
		t.Errorf("Retry-After 1s with Cap 80ms gave %v", d)
	}
}

func TestNewValidates(t *testing.T) {
	bad := []struct {
		name string
		urls []string
		opts []Option
	}{
		{"no URL", nil, nil},
		{"no scheme", []string{"127.0.0.1:7000"}, nil},
		{"query", []string{"http://127.0.0.1:7000/?x=1"}, nil},
		{"no attempts", []string{"http://127.0.0.1:7000"}, []Option{WithRetry(RetryPolicy{})}},
		{"missing CA file", []string{"https://127.0.0.1:7000"}, []Option{WithCAFile("/nonexistent/ca.crt")}},
	}
	for _, tc := range bad {
		if _, err := New(tc.urls, tc.opts...); err == nil {
			t.Errorf("%s: New accepted it", tc.name)
		}
	}
	c, err := New([]string{"http://127.0.0.1:7000/", "https://node-2:7000/prefix/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.bases[0] != "http://127.0.0.1:7000" || c.bases[1] != "https://node-2:7000/prefix" {
		t.Errorf("bases %q", c.bases)
	}
}

func TestErrorIs(t *testing.T) {
	for status, sentinel := range map[int]error{401: ErrUnauthorized, 403: ErrForbidden, 404: ErrNotFound, 503: ErrUnavailable} {
		e := &Error{Status: status}
		for _, other := range []error{ErrUnauthorized, ErrForbidden, ErrNotFound, ErrUnavailable, ErrSiblings} {
			if got, want := e.Is(other), other == sentinel; got != want {
				t.Errorf("(&Error{Status: %d}).Is(%v) = %v", status, other, got)
			}
		}
	}
	e := apiError(431, nil)
	if e.Code != "" || e.Message != "Request Header Fields Too Large" {
		t.Errorf("a bare 431 became %+v", e)
	}
	e = apiError(400, []byte(`{"error":{"code":"invalid_key","message":"keys must be 1 to 1024 bytes"}}`))
	if e.Code != "invalid_key" || e.Message != "keys must be 1 to 1024 bytes" || e.Error() != "dynamo: 400 invalid_key: keys must be 1 to 1024 bytes" {
		t.Errorf("parsed %+v (%v)", e, e)
	}
}
