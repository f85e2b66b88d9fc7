package dynamo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"iter"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBatchKeys is the most keys one batch read asks a node for;
// [Client.GetMany] splits longer lists.
const MaxBatchKeys = 100

// Versions is what a read found for a key: its live values (one, or several
// concurrent siblings, or none) and the causal context of the read.
type Versions struct {
	// Key is the key read.
	Key string
	// Context is the opaque causal context of the read; pass it to
	// [Causal] on the next write or delete of the key. It is empty for a
	// key never written, and set for a deleted key (the tombstone's), so
	// that writing with it supersedes the delete.
	Context string
	// Values are the live versions: one normally, several when concurrent
	// writes made siblings, none when the key has no live value.
	Values [][]byte
	// Siblings are the same versions as Values, in the same order, each
	// with the attributes it was written with (content type, metadata,
	// expiry); Siblings[i].Value is Values[i].
	Siblings []Version
}

// Exists reports whether the key has at least one live value.
func (v *Versions) Exists() bool { return len(v.Values) > 0 }

// Value returns the key's only value. It returns [ErrNotFound] when the
// key has no live value and an error matching [ErrSiblings] when it has
// several: merge [Versions.Values] then.
func (v *Versions) Value() ([]byte, error) {
	switch len(v.Values) {
	case 0:
		return nil, ErrNotFound
	case 1:
		return v.Values[0], nil
	default:
		return nil, fmt.Errorf("%w: %q has %d concurrent values", ErrSiblings, v.Key, len(v.Values))
	}
}

// readOptions are what ReadOptions set.
type readOptions struct{ r int }

// writeOptions are what WriteOptions set.
type writeOptions struct {
	causal string
	w, r   int
	attrs  attributes
	err    error // the first invalid option's
}

// fail records the first invalid option.
func (o *writeOptions) fail(err error) {
	if o.err == nil {
		o.err = err
	}
}

// ReadOption modifies a read ([Client.Get], [Client.GetMany],
// [Client.ListKeys]).
type ReadOption interface{ applyRead(*readOptions) }

// WriteOption modifies a write ([Client.Put], [Client.Delete],
// [Client.Update]). [ContentType], [Meta] and [TTL] describe the value
// written, so [Client.Delete] refuses them.
type WriteOption interface{ applyWrite(*writeOptions) }

// ReadWriteOption is an option for reads and writes alike.
type ReadWriteOption interface {
	ReadOption
	WriteOption
}

type quorumR int

func (q quorumR) applyRead(o *readOptions)   { o.r = int(q) }
func (q quorumR) applyWrite(o *writeOptions) { o.r = int(q) }

type quorumW int

func (q quorumW) applyWrite(o *writeOptions) { o.w = int(q) }

type causal string

func (c causal) applyWrite(o *writeOptions) { o.causal = string(c) }

// R sets the read quorum of this call, 1..=N (0: the node's default). On
// a write it applies to the read a [Client.Delete] without context or a
// [Client.Update] makes.
func R(n int) ReadWriteOption { return quorumR(n) }

// W sets the write quorum of this call, 1..=N (0: the node's default).
func W(n int) WriteOption { return quorumW(n) }

// Causal makes a write or delete supersede the versions a context covers:
// give the [Versions.Context] of a read of the key (or the context a write
// of it returned). [Client.Update] ignores it: it writes with its own
// read's context.
func Causal(context string) WriteOption { return causal(context) }

func readConfig(opts []ReadOption) readOptions {
	var o readOptions
	for _, opt := range opts {
		opt.applyRead(&o)
	}
	return o
}

func writeConfig(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, opt := range opts {
		opt.applyWrite(&o)
	}
	if o.err == nil {
		o.fail(o.attrs.check())
	}
	return o
}

// query encodes the non-zero quorum parameters (and extra pairs).
func query(pairs ...string) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		parts = append(parts, pairs[i]+"="+escape(pairs[i+1]))
	}
	return strings.Join(parts, "&")
}

func quorumPairs(r, w int) []string {
	var pairs []string
	if r != 0 {
		pairs = append(pairs, "r", strconv.Itoa(r))
	}
	if w != 0 {
		pairs = append(pairs, "w", strconv.Itoa(w))
	}
	return pairs
}

// escape percent-encodes every byte but A-Z a-z 0-9 - _ ~.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// keyPath is the path of a key's route: the key as one path segment, "/"
// and "." percent-encoded too, so no proxy or library on the way merges
// "//" or resolves "." and ".." in it (the node decodes them back).
func keyPath(key string) string { return "/v1/kv/" + escape(key) }

// versionsBody is the JSON shape of a successful read.
type versionsBody struct {
	Context  *string       `json:"context"`
	Values   []string      `json:"values"`
	Siblings []siblingBody `json:"siblings"`
}

func decodeValues(key string, encoded []string) ([][]byte, error) {
	values := make([][]byte, len(encoded))
	for i, e := range encoded {
		v, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			return nil, fmt.Errorf("dynamo: value %d of %q is not base64: %w", i, key, err)
		}
		values[i] = v
	}
	return values, nil
}

// Get reads key. A key without a live value is not an error: the Versions
// then hold no value (and the tombstone's context, if it was deleted).
// Siblings (a 300 answer) are not an error either: they are all in
// Versions.Values. A 404 other than the node's answer for a missing key
// (code not_found) is an error: no_such_route (a wrong base URL) or a
// proxy's own.
func (c *Client) Get(ctx context.Context, key string, opts ...ReadOption) (*Versions, error) {
	o := readConfig(opts)
	resp, err := c.do(ctx, &request{
		method:     http.MethodGet,
		path:       keyPath(key),
		query:      query(quorumPairs(o.r, 0)...),
		idempotent: true,
	})
	if err != nil {
		return nil, err
	}
	v := &Versions{Key: key, Context: resp.header.Get(contextHeader)}
	switch resp.status {
	case http.StatusOK, http.StatusMultipleChoices:
	case http.StatusNotFound:
		// Code not_found is the node's answer for a key without a live
		// value. Any other 404 is an error: no_such_route (a path no route
		// matches, e.g. a wrong base URL) or a proxy's own answer.
		if e := apiError(resp.status, resp.body); e.Code != "not_found" {
			return nil, e
		}
		return v, nil
	default:
		return nil, apiError(resp.status, resp.body)
	}
	if mediaType, _, _ := mime.ParseMediaType(resp.header.Get("Content-Type")); mediaType != "application/json" {
		// A node that ignored Accept: the body is the one value.
		v.Siblings = []Version{versionOfHeaders(resp.body, resp.header)}
		v.Values = [][]byte{resp.body}
		return v, nil
	}
	var body versionsBody
	if err := json.Unmarshal(resp.body, &body); err != nil {
		return nil, fmt.Errorf("dynamo: reading %q: malformed answer: %w", key, err)
	}
	if body.Context != nil && *body.Context != "" {
		v.Context = *body.Context
	}
	if v.Values, v.Siblings, err = decodeVersions(key, body.Values, body.Siblings); err != nil {
		return nil, err
	}
	return v, nil
}

// Put stores value under key and returns the context of the new version.
// With [Causal] it supersedes the versions that context covers; without, it
// becomes a sibling of any value the key holds. [W] sets the write quorum.
// [ContentType], [Meta] and [TTL] give the version attributes, which reads
// return in [Versions.Siblings]; an invalid one is an error matching
// [ErrInvalidOption], and nothing is sent. While a cluster is being upgraded
// from a release without attributes, a write with any answers 503
// attributes_unavailable, retried as any 503 is.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...WriteOption) (string, error) {
	o := writeConfig(opts)
	if o.err != nil {
		return "", o.err
	}
	return c.put(ctx, key, value, &o)
}

// put writes value with the options o (checked).
func (c *Client) put(ctx context.Context, key string, value []byte, o *writeOptions) (string, error) {
	if value == nil {
		value = []byte{}
	}
	return c.write(ctx, &request{
		method:      http.MethodPut,
		path:        keyPath(key),
		query:       query(append(quorumPairs(0, o.w), o.attrs.pairs()...)...),
		body:        value,
		contentType: o.attrs.contentType,
		header:      o.attrs.header(),
		causal:      o.causal,
		idempotent:  o.causal != "",
	})
}

// Delete deletes key: it writes a tombstone superseding the versions the
// [Causal] context covers, or, without one, what the node reads first (an
// error matching [ErrNotFound] if that finds no live value). It returns the
// tombstone's context: writing with it supersedes the delete.
func (c *Client) Delete(ctx context.Context, key string, opts ...WriteOption) (string, error) {
	o := writeConfig(opts)
	if o.err == nil && o.attrs.given() {
		o.err = fmt.Errorf("%w: Delete takes no ContentType, Meta or TTL", ErrInvalidOption)
	}
	if o.err != nil {
		return "", o.err
	}
	return c.write(ctx, &request{
		method:     http.MethodDelete,
		path:       keyPath(key),
		query:      query(quorumPairs(o.r, o.w)...),
		causal:     o.causal,
		idempotent: o.causal != "",
	})
}

// write sends a PUT or DELETE and returns the context of what it wrote.
func (c *Client) write(ctx context.Context, req *request) (string, error) {
	resp, err := c.do(ctx, req)
	if err != nil {
		return "", err
	}
	if resp.status != http.StatusNoContent && resp.status != http.StatusOK {
		return "", apiError(resp.status, resp.body)
	}
	return resp.header.Get(contextHeader), nil
}

// UpdateFunc computes a key's new value from its current siblings (none
// for a key without a live value; several after concurrent writes, which it
// should merge). It returns the value to write, or del = true to delete the
// key; an error aborts the update and is returned as is.
type UpdateFunc func(siblings [][]byte) (value []byte, del bool, err error)

// Update reads key (with the [R] quorum, if given), calls fn with its
// siblings and writes what fn returns (with the [W] quorum) using the
// read's context, so that the write supersedes every version fn saw. It
// returns the context of the write. Deleting a key without a live value
// writes nothing and returns the read's context.
//
// The value written has the [ContentType], [Meta] and [TTL] given to
// Update, and no others: the attributes of the versions read are not
// carried over. An invalid option is an error matching [ErrInvalidOption]
// before anything is read.
func (c *Client) Update(ctx context.Context, key string, fn UpdateFunc, opts ...WriteOption) (string, error) {
	o := writeConfig(opts)
	if o.err != nil {
		return "", o.err
	}
	current, err := c.Get(ctx, key, R(o.r))
	if err != nil {
		return "", err
	}
	value, del, err := fn(current.Values)
	if err != nil {
		return "", err
	}
	if del {
		if !current.Exists() {
			return current.Context, nil
		}
		return c.Delete(ctx, key, Causal(current.Context), W(o.w))
	}
	o.causal = current.Context
	return c.put(ctx, key, value, &o)
}

// batchItem is one key of a batch read's answer.
type batchItem struct {
	Key      string        `json:"key"`
	Context  *string       `json:"context"`
	Values   []string      `json:"values"`
	Siblings []siblingBody `json:"siblings"`
}

// GetMany reads several keys (POST /v1/batch/get, [MaxBatchKeys] keys per
// request) and returns the Versions of each distinct key, their Siblings
// with their attributes; keys without a live value have Versions with no
// values, as with [Client.Get].
func (c *Client) GetMany(ctx context.Context, keys []string, opts ...ReadOption) (map[string]*Versions, error) {
	o := readConfig(opts)
	result := make(map[string]*Versions, len(keys))
	var distinct []string
	for _, key := range keys {
		if !utf8.ValidString(key) {
			return nil, fmt.Errorf("dynamo: key %q is not UTF-8", key)
		}
		if _, seen := result[key]; !seen {
			result[key] = nil
			distinct = append(distinct, key)
		}
	}
	for start := 0; start < len(distinct); start += MaxBatchKeys {
		chunk := distinct[start:min(start+MaxBatchKeys, len(distinct))]
		body, err := json.Marshal(map[string][]string{"keys": chunk})
		if err != nil {
			return nil, err
		}
		resp, err := c.do(ctx, &request{
			method:      http.MethodPost,
			path:        "/v1/batch/get",
			query:       query(quorumPairs(o.r, 0)...),
			body:        body,
			contentType: "application/json",
			idempotent:  true,
		})
		if err != nil {
			return nil, err
		}
		if resp.status != http.StatusOK {
			return nil, apiError(resp.status, resp.body)
		}
		var answer struct {
			Items []batchItem `json:"items"`
		}
		if err := json.Unmarshal(resp.body, &answer); err != nil {
			return nil, fmt.Errorf("dynamo: batch read: malformed answer: %w", err)
		}
		for _, item := range answer.Items {
			if _, asked := result[item.Key]; !asked {
				return nil, fmt.Errorf("dynamo: batch read answered key %q, which was not asked", item.Key)
			}
			v := &Versions{Key: item.Key}
			if item.Context != nil {
				v.Context = *item.Context
			}
			if v.Values, v.Siblings, err = decodeVersions(item.Key, item.Values, item.Siblings); err != nil {
				return nil, err
			}
			result[item.Key] = v
		}
		for _, key := range chunk {
			if result[key] == nil {
				return nil, fmt.Errorf("dynamo: batch read did not answer key %q", key)
			}
		}
	}
	return result, nil
}

// ListKeys iterates over the keys starting with prefix that have a live
// value, in ring order (not sorted), fetching pageSize keys per request
// (1..=1000; 0: the node's default of 100). A failure ends the iteration
// with a non-nil error:
//
//	for key, err := range client.ListKeys(ctx, "users/", 500) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(key)
//	}
func (c *Client) ListKeys(ctx context.Context, prefix string, pageSize int, opts ...ReadOption) iter.Seq2[string, error] {
	o := readConfig(opts)
	return func(yield func(string, error) bool) {
		cursor := ""
		for {
			pairs := []string{"prefix", prefix}
			if pageSize != 0 {
				pairs = append(pairs, "limit", strconv.Itoa(pageSize))
			}
			if cursor != "" {
				pairs = append(pairs, "cursor", cursor)
			}
			pairs = append(pairs, quorumPairs(o.r, 0)...)
			resp, err := c.do(ctx, &request{
				method:     http.MethodGet,
				path:       "/v1/kv",
				query:      query(pairs...),
				idempotent: true,
			})
			if err == nil && resp.status != http.StatusOK {
				err = apiError(resp.status, resp.body)
			}
			var page struct {
				Keys   []string `json:"keys"`
				Cursor *string  `json:"cursor"`
			}
			if err == nil {
				if jsonErr := json.Unmarshal(resp.body, &page); jsonErr != nil {
					err = fmt.Errorf("dynamo: listing keys: malformed answer: %w", jsonErr)
				}
			}
			if err != nil {
				yield("", err)
				return
			}
			for _, key := range page.Keys {
				if !yield(key, nil) {
					return
				}
			}
			if page.Cursor == nil || *page.Cursor == "" {
				return
			}
			cursor = *page.Cursor
		}
	}
}
