package dynamo_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"dynamo.dev/dynamo"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	c := shared(t)
	client := newClient(t, c.URLs())
	ctx := testContext(t)
	k := key(t, "bytes")
	value := make([]byte, 256)
	for i := range value {
		value[i] = byte(i)
	}
	written, err := client.Put(ctx, k, value)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if written == "" {
		t.Fatal("Put returned no context")
	}
	// Every node coordinates every key: read back through each (r = w = 2
	// overlap, so each sees the write).
	for _, url := range c.URLs() {
		v := mustGet(t, newClient(t, []string{url}), k)
		got, err := v.Value()
		if err != nil {
			t.Fatalf("Value through %s: %v", url, err)
		}
		if !bytes.Equal(got, value) {
			t.Fatalf("through %s read %v, wrote %v", url, got, value)
		}
		if v.Key != k || v.Context != written || !v.Exists() {
			t.Fatalf("through %s: %+v, want key %q and the write's context %q", url, v, k, written)
		}
	}

	// An empty value is a value.
	empty := key(t, "empty")
	mustPut(t, client, empty, "")
	v := mustGet(t, client, empty)
	if len(v.Values) != 1 || len(v.Values[0]) != 0 {
		t.Fatalf("empty value read back as %q", v.Values)
	}

	// Explicit quorums are passed on.
	mustPut(t, client, k, "quorums", dynamo.Causal(written), dynamo.W(3))
	if got := strs(mustGet(t, client, k, dynamo.R(3)).Values); !slices.Equal(got, []string{"quorums"}) {
		t.Fatalf("after a w=3 write, r=3 read %q", got)
	}
}

func TestContextSupersedesWithoutItSiblings(t *testing.T) {
	t.Parallel()
	client := newClient(t, shared(t).URLs())
	ctx := testContext(t)
	k := key(t, "k")

	mustPut(t, client, k, "v1")
	read := mustGet(t, client, k)
	mustPut(t, client, k, "v2", dynamo.Causal(read.Context))
	if got := strs(mustGet(t, client, k).Values); !slices.Equal(got, []string{"v2"}) {
		t.Fatalf("a write with the read's context should supersede v1; read %q", got)
	}

	// Without a context the write becomes a sibling; a 300 is not an error.
	mustPut(t, client, k, "v3")
	siblings := mustGet(t, client, k)
	got := strs(siblings.Values)
	sort.Strings(got)
	if !slices.Equal(got, []string{"v2", "v3"}) {
		t.Fatalf("a write without context should make siblings v2, v3; read %q", got)
	}
	if _, err := siblings.Value(); !errors.Is(err, dynamo.ErrSiblings) {
		t.Fatalf("Value() of siblings: %v, want ErrSiblings", err)
	}
	if siblings.Context == "" {
		t.Fatal("siblings came without a context")
	}

	// The siblings' context resolves them; the context a write returns
	// works as well as a read's.
	resolved := mustPut(t, client, k, "v4", dynamo.Causal(siblings.Context))
	if got := strs(mustGet(t, client, k).Values); !slices.Equal(got, []string{"v4"}) {
		t.Fatalf("writing with the siblings' context should resolve them; read %q", got)
	}
	mustPut(t, client, k, "v5", dynamo.Causal(resolved))
	if got := strs(mustGet(t, client, k).Values); !slices.Equal(got, []string{"v5"}) {
		t.Fatalf("writing with the context Put returned should supersede v4; read %q", got)
	}

	// A stale context does not cover later versions: sibling.
	if _, err := client.Put(ctx, k, []byte("stale"), dynamo.Causal(read.Context)); err != nil {
		t.Fatalf("Put with a stale context: %v", err)
	}
	got = strs(mustGet(t, client, k).Values)
	sort.Strings(got)
	if !slices.Equal(got, []string{"stale", "v5"}) {
		t.Fatalf("a write with a stale context should be a sibling of v5; read %q", got)
	}
}

func TestUpdateMergesSiblings(t *testing.T) {
	t.Parallel()
	client := newClient(t, shared(t).URLs())
	ctx := testContext(t)
	k := key(t, "set")

	// merge is a set union of comma-separated members, plus add.
	merge := func(add string, seen *[][]string) dynamo.UpdateFunc {
		return func(siblings [][]byte) ([]byte, bool, error) {
			*seen = append(*seen, strs(siblings))
			members := map[string]bool{add: true}
			for _, s := range siblings {
				for _, m := range strings.Split(string(s), ",") {
					members[m] = true
				}
			}
			var out []string
			for m := range members {
				out = append(out, m)
			}
			sort.Strings(out)
			return []byte(strings.Join(out, ",")), false, nil
		}
	}

	// On a key never written, fn sees no siblings.
	var seen [][]string
	if _, err := client.Update(ctx, k, merge("a", &seen)); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if len(seen) != 1 || len(seen[0]) != 0 {
		t.Fatalf("fn saw %q on a new key, want no siblings", seen)
	}
	// Two writers without context: siblings "a,b" and "c".
	mustPut(t, client, k, "c")
	if n := len(mustGet(t, client, k).Values); n != 2 {
		t.Fatalf("want 2 siblings, read %d", n)
	}
	seen = nil
	written, err := client.Update(ctx, k, merge("d", &seen), dynamo.R(3), dynamo.W(3))
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	got := slices.Clone(seen[0])
	sort.Strings(got)
	if !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("fn saw %q, want the siblings a and c", seen[0])
	}
	v := mustGet(t, client, k)
	if got := strs(v.Values); !slices.Equal(got, []string{"a,c,d"}) {
		t.Fatalf("after Update read %q, want the merge a,c,d alone", got)
	}
	if v.Context != written {
		t.Fatalf("read context %q, Update returned %q", v.Context, written)
	}

	// An error from fn aborts and writes nothing.
	boom := errors.New("boom")
	_, err = client.Update(ctx, k, func([][]byte) ([]byte, bool, error) { return nil, false, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if got := strs(mustGet(t, client, k).Values); !slices.Equal(got, []string{"a,c,d"}) {
		t.Fatalf("a failed Update changed the key: %q", got)
	}

	// del = true deletes with the read's context.
	tomb, err := client.Update(ctx, k, func([][]byte) ([]byte, bool, error) { return nil, true, nil })
	if err != nil {
		t.Fatalf("Update deleting: %v", err)
	}
	v = mustGet(t, client, k)
	if v.Exists() || v.Context != tomb {
		t.Fatalf("after the deleting Update: %+v, want no value and the tombstone's context %q", v, tomb)
	}
	// Deleting what is already deleted writes nothing.
	again, err := client.Update(ctx, k, func([][]byte) ([]byte, bool, error) { return nil, true, nil })
	if err != nil || again != tomb {
		t.Fatalf("Update deleting a deleted key: %q, %v; want the tombstone's context %q", again, err, tomb)
	}
}

func TestAbsentKeyKeepsTombstoneContext(t *testing.T) {
	t.Parallel()
	client := newClient(t, shared(t).URLs())
	ctx := testContext(t)
	k := key(t, "k")

	v := mustGet(t, client, k)
	if v.Exists() || len(v.Values) != 0 || v.Context != "" {
		t.Fatalf("a key never written: %+v, want no values and no context", v)
	}
	if _, err := v.Value(); !errors.Is(err, dynamo.ErrNotFound) {
		t.Fatalf("Value() of an absent key: %v, want ErrNotFound", err)
	}
	var apiErr *dynamo.Error
	if _, err := client.Delete(ctx, k); !errors.Is(err, dynamo.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.Code != "not_found" {
		t.Fatalf("Delete of a key never written: %v, want a 404 not_found *Error", err)
	}

	mustPut(t, client, k, "v1")
	tomb, err := client.Delete(ctx, k)
	if err != nil || tomb == "" {
		t.Fatalf("Delete: %q, %v", tomb, err)
	}
	v = mustGet(t, client, k)
	if v.Exists() {
		t.Fatalf("deleted key read %q", v.Values)
	}
	if v.Context != tomb {
		t.Fatalf("a deleted key's read has context %q, want the tombstone's %q", v.Context, tomb)
	}

	// Re-create with the tombstone's context: one value, read back.
	mustPut(t, client, k, "v2", dynamo.Causal(v.Context))
	if got := strs(mustGet(t, client, k).Values); !slices.Equal(got, []string{"v2"}) {
		t.Fatalf("re-created key read %q, want v2", got)
	}

	// Delete with a context, then re-create without one: the tombstone is
	// no sibling.
	current := mustGet(t, client, k)
	if _, err := client.Delete(ctx, k, dynamo.Causal(current.Context)); err != nil {
		t.Fatalf("Delete with context: %v", err)
	}
	if mustGet(t, client, k).Exists() {
		t.Fatal("key still there after Delete with its context")
	}
	mustPut(t, client, k, "v3")
	if got := strs(mustGet(t, client, k).Values); !slices.Equal(got, []string{"v3"}) {
		t.Fatalf("key re-created without context read %q, want v3", got)
	}
}

func TestKeyEncoding(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	client := newClient(t, shared(t).URLs(), dynamo.WithHTTPClient(rec.client()))
	base := key(t, "")
	keys := map[string]string{ // key suffix -> the escaped path suffix sent
		"users/42/profile":      "users%2F42%2Fprofile",
		"with space":            "with%20space",
		"café/日本語/😀":            "caf%C3%A9%2F%E6%97%A5%E6%9C%AC%E8%AA%9E%2F%F0%9F%98%80",
		"q?a=1&b=2#frag+plus%":  "q%3Fa%3D1%26b%3D2%23frag%2Bplus%25",
		"a/./b":                 "a%2F%2E%2Fb",
		"a/b":                   "a%2Fb",
		"a/../b":                "a%2F%2E%2E%2Fb",
		"double//slash/":        "double%2F%2Fslash%2F",
		"tilde~dash-dot.under_": "tilde~dash-dot%2Eunder_",
	}
	// The key is one path segment: "/" and "." are encoded too.
	escapedBase := strings.NewReplacer("/", "%2F", ".", "%2E").Replace(base)
	for suffix, escaped := range keys {
		k := base + suffix
		mustPut(t, client, k, "value of "+suffix)
		sent := rec.take()
		want := "/v1/kv/" + escapedBase + escaped
		if len(sent) != 1 || sent[0].Path != want {
			t.Fatalf("Put(%q) sent %+v, want path %s", k, sent, want)
		}
	}
	for suffix := range keys {
		k := base + suffix
		v := mustGet(t, client, k)
		if got := strs(v.Values); !slices.Equal(got, []string{"value of " + suffix}) {
			t.Errorf("key %q read %q", k, got)
		}
	}
	// A key starting with a slash.
	lead := "/" + base + "lead"
	mustPut(t, client, lead, "lead")
	if got := strs(mustGet(t, client, lead).Values); !slices.Equal(got, []string{"lead"}) {
		t.Errorf("key %q read %q", lead, got)
	}
	// Keys are checked by the node: empty, too long, not UTF-8.
	for _, bad := range []string{"", strings.Repeat("k", 1025), "bad\xff"} {
		_, err := client.Get(testContext(t), bad)
		var apiErr *dynamo.Error
		if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != "invalid_key" {
			t.Errorf("Get(%.20q): %v, want 400 invalid_key", bad, err)
		}
	}
}

func TestWrongBasePathIsAnError(t *testing.T) {
	t.Parallel()
	client := newClient(t, []string{shared(t).Nodes[0].URL() + "/not-the-api"})
	_, err := client.Get(testContext(t), key(t, "k"))
	var apiErr *dynamo.Error
	if !errors.Is(err, dynamo.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "no_such_route" {
		t.Fatalf("Get under a wrong base path: %v, want the node's 404 no_such_route as an error, not an absent key", err)
	}
}

func TestInvalidParameterIsNotRetried(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	client := newClient(t, shared(t).URLs(), dynamo.WithHTTPClient(rec.client()))
	ctx := testContext(t)
	k := key(t, "k")
	cases := []struct {
		name string
		call func() error
		code string
	}{
		{"w=9", func() error { _, err := client.Put(ctx, k, []byte("v"), dynamo.W(9)); return err }, "invalid_parameter"},
		{"r=-1", func() error { _, err := client.Get(ctx, k, dynamo.R(-1)); return err }, "invalid_parameter"},
		{"bad context", func() error {
			_, err := client.Put(ctx, k, []byte("v"), dynamo.Causal("not-a-context!"))
			return err
		}, "invalid_context"},
	}
	for _, tc := range cases {
		err := tc.call()
		var apiErr *dynamo.Error
		if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != tc.code || apiErr.Message == "" {
			t.Errorf("%s: %v, want a 400 %s *Error with a message", tc.name, err, tc.code)
		}
		if sent := rec.take(); len(sent) != 1 {
			t.Errorf("%s: %d requests sent, want 1 (4xx is never retried): %+v", tc.name, len(sent), sent)
		}
	}
}

func TestGetMany(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	client := newClient(t, shared(t).URLs(), dynamo.WithHTTPClient(rec.client()))
	ctx := testContext(t)
	one, siblings, deleted, absent := key(t, "one"), key(t, "siblings"), key(t, "deleted"), key(t, "absent")
	oneCtx := mustPut(t, client, one, "1")
	mustPut(t, client, siblings, "a")
	mustPut(t, client, siblings, "b")
	mustPut(t, client, deleted, "gone")
	tomb, err := client.Delete(ctx, deleted)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	rec.take()

	got, err := client.GetMany(ctx, []string{one, siblings, deleted, absent, one})
	if err != nil {
		t.Fatalf("GetMany: %v (POST /v1/batch/get is being added to the node; a 404/405 means this binary predates it)", err)
	}
	if len(got) != 4 {
		t.Fatalf("GetMany returned %d keys, want 4", len(got))
	}
	if v := got[one]; !slices.Equal(strs(v.Values), []string{"1"}) || v.Context != oneCtx {
		t.Errorf("%s: %+v, want 1 with context %q", one, v, oneCtx)
	}
	sib := strs(got[siblings].Values)
	sort.Strings(sib)
	if !slices.Equal(sib, []string{"a", "b"}) || got[siblings].Context == "" {
		t.Errorf("%s: %+v, want the siblings a, b", siblings, got[siblings])
	}
	if v := got[deleted]; v.Exists() || v.Context != tomb {
		t.Errorf("%s: %+v, want no value and the tombstone's context %q", deleted, v, tomb)
	}
	if v := got[absent]; v.Exists() || v.Context != "" {
		t.Errorf("%s: %+v, want no value and no context", absent, v)
	}
	if sent := rec.take(); len(sent) != 1 || sent[0].Path != "/v1/batch/get" {
		t.Errorf("GetMany of 4 keys sent %+v, want one POST /v1/batch/get", sent)
	}

	// More than MaxBatchKeys keys take several requests.
	var many []string
	for i := range 150 {
		many = append(many, fmt.Sprintf("%s/many-%03d", one, i))
	}
	for _, k := range many[:3] {
		mustPut(t, client, k, k)
	}
	rec.take()
	got, err = client.GetMany(ctx, many, dynamo.R(2))
	if err != nil {
		t.Fatalf("GetMany of 150 keys: %v", err)
	}
	if len(got) != 150 {
		t.Fatalf("GetMany of 150 keys returned %d", len(got))
	}
	for i, k := range many {
		want := []string{}
		if i < 3 {
			want = []string{k}
		}
		if v := strs(got[k].Values); !slices.Equal(v, want) {
			t.Errorf("%s read %q, want %q", k, v, want)
		}
	}
	if sent := rec.take(); len(sent) != 2 {
		t.Errorf("GetMany of 150 keys sent %d requests, want 2", len(sent))
	}
}

func TestListKeys(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	client := newClient(t, shared(t).URLs(), dynamo.WithHTTPClient(rec.client()))
	ctx := testContext(t)
	prefix := key(t, "list") + "/"
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("%sitem %02d é", prefix, i)
		mustPut(t, client, k, "v")
		want = append(want, k)
	}
	if _, err := client.Delete(ctx, want[0]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	want = want[1:]
	mustPut(t, client, strings.TrimSuffix(prefix, "/"), "outside the prefix")
	rec.take()

	// r = 3 reads every owner of each partition: the default r = 1 may
	// miss a write acknowledged by two replicas of three.
	var got []string
	for k, err := range client.ListKeys(ctx, prefix, 7, dynamo.R(3)) {
		if err != nil {
			t.Fatalf("ListKeys: %v (GET /v1/kv?prefix= is being added to the node; a 400 invalid_key or 404 means this binary predates it)", err)
		}
		got = append(got, k)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("ListKeys listed %d keys %q, want %d keys %q", len(got), got, len(want), want)
	}
	if sent := rec.take(); len(sent) < 4 {
		t.Errorf("24 keys in pages of 7 took %d requests, want at least 4", len(sent))
	}

	// Stopping early fetches no further page.
	n := 0
	for _, err := range client.ListKeys(ctx, prefix, 7) {
		if err != nil {
			t.Fatalf("ListKeys: %v", err)
		}
		if n++; n == 2 {
			if len(rec.take()) == 0 {
				t.Fatal("keys listed without a request")
			}
			break
		}
	}
	if sent := rec.take(); len(sent) != 0 {
		t.Errorf("after the loop stopped, %d more requests were sent: %+v", len(sent), sent)
	}
}
