package dynamo

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxTTL is the longest [TTL] a node takes: ten years.
const MaxTTL = 315360000 * time.Second

// The node's limits on a version's attributes (docs/api.md, "Attributes").
const (
	maxContentTypeBytes = 256
	maxMetaEntries      = 32
	maxMetaBytes        = 4096 // names and values
)

// Headers of the attributes.
const (
	metaPrefix    = "X-Dynamo-Meta-"
	expiresHeader = "X-Dynamo-Expires-At"
)

// Version is one live version of a key with the attributes it was written
// with ([ContentType], [Meta], [TTL]).
type Version struct {
	// Value is the version's bytes.
	Value []byte
	// ContentType is the Content-Type it was written with; empty when it
	// was written without one.
	ContentType string
	// Meta is its user metadata, names in lower case; nil when it has none.
	Meta map[string]string
	// ExpiresAt is when its TTL runs out (from the coordinating node's
	// clock at the write; millisecond precision); the zero time when it
	// never expires. From then on the version reads as deleted.
	ExpiresAt time.Time
}

// attributes are what the ContentType, Meta and TTL options set.
type attributes struct {
	contentType string
	meta        [][2]string // lower-case name, value; in the order given
	ttl         time.Duration
}

// given reports whether any attribute is set.
func (a *attributes) given() bool {
	return a.contentType != "" || len(a.meta) > 0 || a.ttl != 0
}

// check enforces the limits that concern all the metadata together.
func (a *attributes) check() error {
	if len(a.meta) > maxMetaEntries {
		return fmt.Errorf("%w: %d metadata entries; a value keeps at most %d", ErrInvalidOption, len(a.meta), maxMetaEntries)
	}
	size := 0
	for _, pair := range a.meta {
		size += len(pair[0]) + len(pair[1])
	}
	if size > maxMetaBytes {
		return fmt.Errorf("%w: %d bytes of metadata names and values; a value keeps at most %d", ErrInvalidOption, size, maxMetaBytes)
	}
	return nil
}

// pairs are the query parameters of the attributes (the TTL).
func (a *attributes) pairs() []string {
	if a.ttl == 0 {
		return nil
	}
	return []string{"ttl", strconv.FormatInt(ttlSeconds(a.ttl), 10)}
}

// header is the request headers of the attributes (nil if none).
func (a *attributes) header() http.Header {
	if len(a.meta) == 0 {
		return nil
	}
	h := make(http.Header, len(a.meta))
	for _, pair := range a.meta {
		h.Set(metaPrefix+pair[0], pair[1])
	}
	return h
}

// ttlSeconds rounds a positive TTL of at most MaxTTL up to whole seconds.
func ttlSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

type contentType string

func (t contentType) applyWrite(o *writeOptions) {
	s := string(t)
	if s != "" && (len(s) > maxContentTypeBytes || !printable(s)) {
		o.fail(fmt.Errorf("%w: ContentType must be at most %d bytes of printable ASCII without leading or trailing spaces; got %q",
			ErrInvalidOption, maxContentTypeBytes, s))
		return
	}
	o.attrs.contentType = s
}

type meta [2]string

func (m meta) applyWrite(o *writeOptions) {
	name, value := strings.ToLower(m[0]), m[1]
	if !token(name) {
		o.fail(fmt.Errorf("%w: Meta name %q is not an HTTP header token (letters, digits and !#$%%&'*+-.^_`|~)", ErrInvalidOption, m[0]))
		return
	}
	if value != "" && !printable(value) {
		o.fail(fmt.Errorf("%w: Meta value of %q must be printable ASCII without leading or trailing spaces; got %q", ErrInvalidOption, name, value))
		return
	}
	for _, pair := range o.attrs.meta {
		if pair[0] == name {
			o.fail(fmt.Errorf("%w: Meta name %q given twice (names are case-insensitive)", ErrInvalidOption, name))
			return
		}
	}
	o.attrs.meta = append(o.attrs.meta, [2]string{name, value})
}

type ttl time.Duration

func (t ttl) applyWrite(o *writeOptions) {
	d := time.Duration(t)
	if d <= 0 || d > MaxTTL {
		o.fail(fmt.Errorf("%w: TTL must be positive and at most %v; got %v", ErrInvalidOption, MaxTTL, d))
		return
	}
	o.attrs.ttl = d
}

// ContentType stores mediaType (e.g. "application/json") as the Content-Type
// of the version [Client.Put] or [Client.Update] writes; reads return it in
// [Version.ContentType]. It is at most 256 bytes of printable ASCII. The
// empty string means none, as without the option: the client then sends no
// Content-Type, and the version reads back with an empty ContentType.
func ContentType(mediaType string) WriteOption { return contentType(mediaType) }

// Meta stores the user metadata entry name: value with the version
// [Client.Put] or [Client.Update] writes (sent as the header
// X-Dynamo-Meta-{name}); reads return it in [Version.Meta]. Names are
// case-insensitive HTTP header tokens and come back in lower case; a name
// may be given once per write. Values are printable ASCII without leading
// or trailing spaces (possibly empty). A version keeps at most 32 entries
// of 4 KiB in all (names and values).
func Meta(name, value string) WriteOption { return meta{name, value} }

// TTL makes the version [Client.Put] or [Client.Update] writes expire
// after d, rounded up to whole seconds (at most [MaxTTL]): from then on it
// reads as deleted. The expiry belongs to that version: a sibling written
// without a TTL stays, and a later write with the read's context replaces
// the version and its expiry (write again to extend it).
func TTL(d time.Duration) WriteOption { return ttl(d) }

// printable reports whether s is printable ASCII (space to tilde) and
// neither starts nor ends with a space, which HTTP would strip.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return s == "" || (s[0] != ' ' && s[len(s)-1] != ' ')
}

// token reports whether s is a non-empty HTTP token (RFC 9110, tchar).
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// siblingBody is one element of the siblings of a read's JSON shape.
type siblingBody struct {
	Value       *string           `json:"value"`
	ContentType *string           `json:"content_type"`
	Meta        map[string]string `json:"meta"`
	ExpiresAt   *int64            `json:"expires_at"`
}

// decodeVersions decodes the values and siblings of a read's JSON shape:
// the values, and the same versions with their attributes (from the
// siblings; without attributes when the node sent none, as a node
// predating them does).
func decodeVersions(key string, encoded []string, siblings []siblingBody) ([][]byte, []Version, error) {
	if len(siblings) == 0 {
		values, err := decodeValues(key, encoded)
		if err != nil {
			return nil, nil, err
		}
		versions := make([]Version, len(values))
		for i, v := range values {
			versions[i] = Version{Value: v}
		}
		return values, versions, nil
	}
	if len(siblings) != len(encoded) {
		return nil, nil, fmt.Errorf("dynamo: reading %q: malformed answer: %d values but %d siblings", key, len(encoded), len(siblings))
	}
	values := make([][]byte, len(siblings))
	versions := make([]Version, len(siblings))
	for i, s := range siblings {
		if s.Value == nil {
			return nil, nil, fmt.Errorf("dynamo: reading %q: malformed answer: sibling %d has no value", key, i)
		}
		v, err := base64.StdEncoding.DecodeString(*s.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("dynamo: value %d of %q is not base64: %w", i, key, err)
		}
		values[i] = v
		versions[i] = Version{Value: v}
		if s.ContentType != nil {
			versions[i].ContentType = *s.ContentType
		}
		if len(s.Meta) > 0 {
			versions[i].Meta = s.Meta
		}
		if s.ExpiresAt != nil {
			versions[i].ExpiresAt = time.UnixMilli(*s.ExpiresAt)
		}
	}
	return values, versions, nil
}

// versionOfHeaders is the one version of a single-value answer (a node
// that ignored Accept: application/json): its body, and its attributes
// from the headers. A value written without a content type then reads as
// application/octet-stream.
func versionOfHeaders(body []byte, header http.Header) Version {
	v := Version{Value: body, ContentType: header.Get("Content-Type")}
	for name, values := range header {
		if len(values) > 0 && len(name) > len(metaPrefix) && strings.EqualFold(name[:len(metaPrefix)], metaPrefix) {
			if v.Meta == nil {
				v.Meta = make(map[string]string)
			}
			v.Meta[strings.ToLower(name[len(metaPrefix):])] = values[0]
		}
	}
	if ms, err := strconv.ParseInt(header.Get(expiresHeader), 10, 64); err == nil {
		v.ExpiresAt = time.UnixMilli(ms)
	}
	return v
}
