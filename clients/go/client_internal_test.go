package dynamo

import (
	"net/http"
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

func TestTTLRoundsUp(t *testing.T) {
	cases := map[time.Duration]int64{
		time.Nanosecond:                        1,
		time.Second:                            1,
		time.Second + time.Nanosecond:          2,
		1500 * time.Millisecond:                2,
		time.Hour:                              3600,
		MaxTTL:                                 315360000,
		MaxTTL - time.Second + time.Nanosecond: 315360000,
	}
	for d, want := range cases {
		if got := ttlSeconds(d); got != want {
			t.Errorf("ttlSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestDecodeVersions(t *testing.T) {
	// A node predating attributes sends values only.
	values, versions, err := decodeVersions("k", []string{"YQ==", "Yg=="}, nil)
	if err != nil || len(values) != 2 || len(versions) != 2 || string(versions[1].Value) != "b" || versions[1].ContentType != "" {
		t.Errorf("values without siblings: %q %+v %v", values, versions, err)
	}
	// Siblings carry the attributes, in the order of the values.
	ct, v, at := "text/plain", "Yg==", int64(1764547200000)
	values, versions, err = decodeVersions("k", []string{v}, []siblingBody{{Value: &v, ContentType: &ct, Meta: map[string]string{"a": "1"}, ExpiresAt: &at}})
	if err != nil || string(values[0]) != "b" || versions[0].ContentType != ct || versions[0].Meta["a"] != "1" || versions[0].ExpiresAt.UnixMilli() != at {
		t.Errorf("a sibling with attributes: %q %+v %v", values, versions, err)
	}
	empty := map[string]string{}
	if _, versions, _ = decodeVersions("k", []string{v}, []siblingBody{{Value: &v, Meta: empty}}); versions[0].Meta != nil || !versions[0].ExpiresAt.IsZero() {
		t.Errorf("a sibling without attributes: %+v", versions[0])
	}
	if _, _, err := decodeVersions("k", []string{v, v}, []siblingBody{{Value: &v}}); err == nil {
		t.Error("two values and one sibling were taken")
	}
	if _, _, err := decodeVersions("k", []string{v}, []siblingBody{{}}); err == nil {
		t.Error("a sibling without a value was taken")
	}
}

func TestVersionOfHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Dynamo-Meta-Owner", "ops")
	h.Set("X-Dynamo-Expires-At", "1764547200000")
	h.Set("X-Dynamo-Context", "c")
	v := versionOfHeaders([]byte("{}"), h)
	if v.ContentType != "application/json" || len(v.Meta) != 1 || v.Meta["owner"] != "ops" || v.ExpiresAt.UnixMilli() != 1764547200000 {
		t.Errorf("versionOfHeaders: %+v", v)
	}
}

func TestHeaderChecks(t *testing.T) {
	for s, want := range map[string]bool{"owner": true, "x-trace.id": true, "a!#$%&'*+-.^_`|~9": true, "": false, "a b": false, "a:b": false, "é": false, "a\n": false} {
		if got := token(s); got != want {
			t.Errorf("token(%q) = %v", s, got)
		}
	}
	for s, want := range map[string]bool{"": true, "a b": true, "text/plain; charset=utf-8": true, " a": false, "a ": false, "a\tb": false, "é": false, "\x7f": false} {
		if got := printable(s); got != want {
			t.Errorf("printable(%q) = %v", s, got)
		}
	}
}
