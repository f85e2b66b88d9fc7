package dynamo_test

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"dynamo.dev/dynamo"
)

// wantVersion checks a version's value and attributes; expires is the
// range ExpiresAt must fall in (both zero: it must not expire).
func wantVersion(t *testing.T, where string, got dynamo.Version, value, contentType string, meta map[string]string, from, to time.Time) {
	t.Helper()
	if string(got.Value) != value || got.ContentType != contentType || !maps.Equal(got.Meta, meta) {
		t.Errorf("%s: %q content type %q meta %q; want %q, %q, %q", where, got.Value, got.ContentType, got.Meta, value, contentType, meta)
	}
	if from.IsZero() {
		if !got.ExpiresAt.IsZero() {
			t.Errorf("%s: expires at %v, want never", where, got.ExpiresAt)
		}
	} else if got.ExpiresAt.Before(from) || got.ExpiresAt.After(to) {
		t.Errorf("%s: expires at %v, want within [%v, %v]", where, got.ExpiresAt, from, to)
	}
}

func TestAttributesRoundTrip(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	client := newClient(t, shared(t).URLs(), dynamo.WithHTTPClient(rec.client()))
	ctx := testContext(t)
	doc, plain := key(t, "doc"), key(t, "plain")
	meta := map[string]string{"owner": "ops team", "x-trace.id": "a1~b2", "empty": ""}

	before := time.Now()
	if _, err := client.Put(ctx, doc, []byte(`{"a":1}`), dynamo.ContentType("application/json; charset=utf-8"),
		dynamo.Meta("Owner", "ops team"), dynamo.Meta("X-Trace.ID", "a1~b2"), dynamo.Meta("empty", ""),
		dynamo.TTL(90*time.Minute+time.Millisecond)); err != nil {
		t.Fatalf("Put with attributes: %v", err)
	}
	after := time.Now()
	sent := rec.take()
	if len(sent) != 1 {
		t.Fatalf("Put sent %+v, want one request", sent)
	}
	q, _ := url.ParseQuery(sent[0].Query)
	if got := q.Get("ttl"); got != "5401" { // 90 min and 1 ms, rounded up
		t.Errorf("TTL(90m1ms) sent ttl=%q, want 5401", got)
	}
	if got := sent[0].Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("sent Content-Type %q", got)
	}
	if got := sent[0].Header.Get("X-Dynamo-Meta-Owner"); got != "ops team" {
		t.Errorf("sent X-Dynamo-Meta-Owner %q", got)
	}

	// Without attributes the client sends no Content-Type (which would be
	// stored), no metadata and no TTL, and the version reads back without.
	// ContentType("") is the same as no option.
	mustPut(t, client, plain, "bytes", dynamo.ContentType(""))
	sent = rec.take()
	if len(sent) != 1 || sent[0].Query != "" {
		t.Fatalf("a plain Put sent %+v, want one request without a query", sent)
	}
	for name := range sent[0].Header {
		if strings.EqualFold(name, "Content-Type") || strings.HasPrefix(strings.ToLower(name), "x-dynamo-") {
			t.Errorf("a plain Put sent the header %s: %q", name, sent[0].Header[name])
		}
	}

	expiresFrom := before.Add(5401 * time.Second).Add(-2 * time.Second) // the node's clock may differ a little
	expiresTo := after.Add(5401 * time.Second).Add(2 * time.Second)
	v := mustGet(t, client, doc)
	if len(v.Siblings) != 1 || len(v.Values) != 1 {
		t.Fatalf("Get: %+v, want one version", v)
	}
	wantVersion(t, "Get", v.Siblings[0], `{"a":1}`, "application/json; charset=utf-8", meta, expiresFrom, expiresTo)
	if string(v.Values[0]) != `{"a":1}` {
		t.Errorf("Values %q", v.Values)
	}
	v = mustGet(t, client, plain)
	if len(v.Siblings) != 1 {
		t.Fatalf("Get: %+v, want one version", v)
	}
	wantVersion(t, "Get of a plain value", v.Siblings[0], "bytes", "", nil, time.Time{}, time.Time{})

	many, err := client.GetMany(ctx, []string{doc, plain})
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if s := many[doc].Siblings; len(s) != 1 {
		t.Errorf("GetMany: %s has %d siblings, want 1", doc, len(s))
	} else {
		wantVersion(t, "GetMany", s[0], `{"a":1}`, "application/json; charset=utf-8", meta, expiresFrom, expiresTo)
	}
	if s := many[plain].Siblings; len(s) != 1 {
		t.Errorf("GetMany: %s has %d siblings, want 1", plain, len(s))
	} else {
		wantVersion(t, "GetMany of a plain value", s[0], "bytes", "", nil, time.Time{}, time.Time{})
	}

	// The limits the client checks are the node's: 32 entries of 4096
	// bytes in all, and MaxTTL, are taken.
	full := key(t, "full")
	opts := []dynamo.WriteOption{dynamo.TTL(dynamo.MaxTTL), dynamo.ContentType(strings.Repeat("t", 256))}
	want := map[string]string{}
	for i := range 32 {
		name, value := fmt.Sprintf("m%02d", i), strings.Repeat("v", 125)
		opts = append(opts, dynamo.Meta(name, value))
		want[name] = value
	}
	mustPut(t, client, full, "full", opts...)
	v = mustGet(t, client, full)
	if len(v.Siblings) != 1 || !maps.Equal(v.Siblings[0].Meta, want) || len(v.Siblings[0].ContentType) != 256 ||
		v.Siblings[0].ExpiresAt.Before(time.Now().Add(dynamo.MaxTTL-time.Hour)) {
		t.Errorf("the largest attributes read back as %+v", v.Siblings)
	}
}

func TestSiblingsKeepTheirAttributes(t *testing.T) {
	t.Parallel()
	client := newClient(t, shared(t).URLs())
	ctx := testContext(t)
	k := key(t, "k")

	mustPut(t, client, k, "text", dynamo.ContentType("text/plain"), dynamo.Meta("n", "1"))
	start := time.Now()
	mustPut(t, client, k, "json", dynamo.ContentType("application/json"), dynamo.Meta("n", "2"), dynamo.Meta("by", "b"), dynamo.TTL(time.Hour))
	end := time.Now()

	check := func(where string, v *dynamo.Versions) {
		t.Helper()
		if len(v.Siblings) != 2 || len(v.Values) != 2 {
			t.Fatalf("%s: %d siblings and %d values, want 2 of each", where, len(v.Siblings), len(v.Values))
		}
		for i, s := range v.Siblings {
			if string(s.Value) != string(v.Values[i]) {
				t.Errorf("%s: sibling %d is %q but value %d is %q: not in the same order", where, i, s.Value, i, v.Values[i])
			}
			switch string(s.Value) {
			case "text":
				wantVersion(t, where, s, "text", "text/plain", map[string]string{"n": "1"}, time.Time{}, time.Time{})
			case "json":
				wantVersion(t, where, s, "json", "application/json", map[string]string{"n": "2", "by": "b"},
					start.Add(time.Hour-2*time.Second), end.Add(time.Hour+2*time.Second))
			default:
				t.Errorf("%s: unexpected sibling %q", where, s.Value)
			}
		}
	}
	v := mustGet(t, client, k)
	check("Get", v)
	many, err := client.GetMany(ctx, []string{k})
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	check("GetMany", many[k])

	// Update writes with the attributes it is given, not those read.
	var seen []string
	if _, err := client.Update(ctx, k, func(siblings [][]byte) ([]byte, bool, error) {
		seen = strs(siblings)
		return []byte("merged"), false, nil
	}, dynamo.ContentType("text/x-merged"), dynamo.Meta("n", "3")); err != nil {
		t.Fatalf("Update: %v", err)
	}
	sort.Strings(seen)
	if !slices.Equal(seen, []string{"json", "text"}) {
		t.Errorf("Update's fn saw %q", seen)
	}
	v = mustGet(t, client, k)
	if len(v.Siblings) != 1 {
		t.Fatalf("after Update: %+v, want one version", v)
	}
	wantVersion(t, "after Update", v.Siblings[0], "merged", "text/x-merged", map[string]string{"n": "3"}, time.Time{}, time.Time{})

	// A write with the context and no attributes replaces them.
	mustPut(t, client, k, "bare", dynamo.Causal(v.Context))
	v = mustGet(t, client, k)
	if len(v.Siblings) != 1 {
		t.Fatalf("after a bare write: %+v, want one version", v)
	}
	wantVersion(t, "after a bare write", v.Siblings[0], "bare", "", nil, time.Time{}, time.Time{})
}

func TestTTLExpires(t *testing.T) {
	t.Parallel()
	client := newClient(t, shared(t).URLs())
	ctx := testContext(t)
	prefix := key(t, "ttl") + "/"
	gone, mixed := prefix+"gone", prefix+"mixed"

	start := time.Now()
	mustPut(t, client, gone, "short-lived", dynamo.TTL(time.Second))
	mustPut(t, client, mixed, "stays")
	mustPut(t, client, mixed, "goes", dynamo.TTL(time.Second)) // a sibling
	v := mustGet(t, client, gone)
	if time.Since(start) < 900*time.Millisecond { // else it may have expired already
		if !v.Exists() || len(v.Siblings) != 1 || v.Siblings[0].ExpiresAt.IsZero() {
			t.Fatalf("right after the write: %+v, want the value with an expiry", v)
		}
		if d := time.Until(v.Siblings[0].ExpiresAt); d > 3*time.Second {
			t.Errorf("a TTL of 1s expires in %v", d)
		}
	}

	// Poll until both TTLs have passed: gone reads as deleted, mixed
	// keeps its sibling written without a TTL.
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, m := mustGet(t, client, gone), mustGet(t, client, mixed)
		if !g.Exists() && slices.Equal(strs(m.Values), []string{"stays"}) {
			if g.Context == "" {
				t.Error("an expired key reads without a context; a later write would not supersede it")
			}
			if _, err := g.Value(); !errors.Is(err, dynamo.ErrNotFound) {
				t.Errorf("Value() of an expired key: %v, want ErrNotFound", err)
			}
			if len(m.Siblings) != 1 || !m.Siblings[0].ExpiresAt.IsZero() {
				t.Errorf("mixed after the expiry: %+v", m.Siblings)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after a write with a TTL of 1 s: %s reads %q, %s reads %q", gone, strs(g.Values), mixed, strs(m.Values))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if time.Since(start) < time.Second {
		t.Fatalf("a TTL of 1 s expired after %v", time.Since(start))
	}

	many, err := client.GetMany(ctx, []string{gone, mixed})
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if g := many[gone]; g.Exists() || len(g.Siblings) != 0 || g.Context == "" {
		t.Errorf("GetMany of the expired key: %+v, want no value and a context", g)
	}
	if got := strs(many[mixed].Values); !slices.Equal(got, []string{"stays"}) {
		t.Errorf("GetMany of mixed: %q, want stays", got)
	}
	var listed []string
	for k, err := range client.ListKeys(ctx, prefix, 0, dynamo.R(3)) {
		if err != nil {
			t.Fatalf("ListKeys: %v", err)
		}
		listed = append(listed, k)
	}
	if !slices.Equal(listed, []string{mixed}) {
		t.Errorf("ListKeys listed %q, want only %s", listed, mixed)
	}
}

func TestInvalidAttributesSendNothing(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	// The URL is never dialled: every call must fail before a request.
	client := newClient(t, []string{"http://127.0.0.1:9"}, dynamo.WithHTTPClient(rec.client()))
	ctx := testContext(t)
	var tooMany, tooLarge []dynamo.WriteOption
	for i := range 33 {
		tooMany = append(tooMany, dynamo.Meta(fmt.Sprintf("m%d", i), "v"))
	}
	for i := range 2 {
		tooLarge = append(tooLarge, dynamo.Meta(fmt.Sprintf("m%d", i), strings.Repeat("v", 2047)))
	}
	cases := map[string][]dynamo.WriteOption{
		"TTL 0":                 {dynamo.TTL(0)},
		"TTL negative":          {dynamo.TTL(-time.Second)},
		"TTL beyond MaxTTL":     {dynamo.TTL(dynamo.MaxTTL + time.Nanosecond)},
		"empty meta name":       {dynamo.Meta("", "v")},
		"meta name with space":  {dynamo.Meta("my name", "v")},
		"meta name with colon":  {dynamo.Meta("a:b", "v")},
		"meta name not ASCII":   {dynamo.Meta("café", "v")},
		"meta value newline":    {dynamo.Meta("ok", "a\r\nX-Injected: 1")},
		"meta value not ASCII":  {dynamo.Meta("ok", "café")},
		"meta value padded":     {dynamo.Meta("ok", " v ")},
		"meta name twice":       {dynamo.Meta("Owner", "a"), dynamo.Meta("owner", "b")},
		"33 meta entries":       tooMany,
		"4098 bytes of meta":    tooLarge,
		"content type too long": {dynamo.ContentType(strings.Repeat("t", 257))},
		"content type control":  {dynamo.ContentType("text/plain\n")},
		"valid then invalid":    {dynamo.ContentType("text/plain"), dynamo.W(2), dynamo.TTL(-1)},
	}
	for name, opts := range cases {
		if _, err := client.Put(ctx, "k", []byte("v"), opts...); !errors.Is(err, dynamo.ErrInvalidOption) {
			t.Errorf("Put with %s: %v, want ErrInvalidOption", name, err)
		}
		called := false
		_, err := client.Update(ctx, "k", func([][]byte) ([]byte, bool, error) { called = true; return nil, false, nil }, opts...)
		if !errors.Is(err, dynamo.ErrInvalidOption) || called {
			t.Errorf("Update with %s: %v (fn called: %v), want ErrInvalidOption before reading", name, err, called)
		}
	}
	for _, opt := range []dynamo.WriteOption{dynamo.ContentType("text/plain"), dynamo.Meta("a", "b"), dynamo.TTL(time.Hour)} {
		if _, err := client.Delete(ctx, "k", dynamo.Causal("c"), opt); !errors.Is(err, dynamo.ErrInvalidOption) {
			t.Errorf("Delete with an attribute: %v, want ErrInvalidOption", err)
		}
	}
	if sent := rec.take(); len(sent) != 0 {
		t.Errorf("invalid options sent %d requests: %+v", len(sent), sent)
	}
}
