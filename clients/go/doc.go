// Package dynamo is the Go client of the Dynamo-style key-value store: it
// speaks the node's HTTP API (docs/api.md of the store) and carries the
// causal context for the caller.
//
// A [Client] talks to any node of a cluster (every node coordinates every
// key). Give it several node URLs: on a connection error it fails over to the
// next one. Calls that answer 503 or fail to connect are retried with
// exponential backoff and full jitter ([RetryPolicy]); 4xx answers never are.
//
// # Context and siblings
//
// A read returns [Versions]: every concurrent value of the key (its siblings)
// and an opaque context summarising them. Write back with that context
// ([Causal]) and the new value supersedes exactly what the read saw; write
// without it and the new value becomes a sibling of whatever is stored. A key
// without a live value is not an error: [Client.Get] returns Versions with no
// values, keeping a tombstone's context so that a later write supersedes the
// delete.
//
// [Client.Update] does the read-modify-write: it reads, hands the siblings to
// a function that merges them and applies a change, and writes the result
// with the read's context.
//
//	client, err := dynamo.New([]string{"http://127.0.0.1:7000", "http://127.0.0.1:7001"})
//	if err != nil {
//		return err
//	}
//	_, err = client.Update(ctx, "counters/visits", func(siblings [][]byte) ([]byte, bool, error) {
//		highest := 0
//		for _, s := range siblings { // concurrent versions: keep the highest count
//			n, _ := strconv.Atoi(string(s))
//			highest = max(highest, n)
//		}
//		return []byte(strconv.Itoa(highest + 1)), false, nil
//	})
//
// # Attributes
//
// Each version keeps the content type, user metadata and expiry its write
// gave ([ContentType], [Meta], [TTL] on [Client.Put] or [Client.Update]);
// reads return them per sibling in [Versions.Siblings], a [Version] for
// each of [Versions.Values]. A version whose TTL has passed reads as
// deleted. Options the node would refuse are refused before any request,
// with an error matching [ErrInvalidOption].
//
// # Errors
//
// A node's error answer is an [*Error] carrying the HTTP status and the
// node's code and message. Test for classes of errors with [errors.Is] and
// the sentinels [ErrUnauthorized], [ErrForbidden], [ErrNotFound] and
// [ErrUnavailable] (also returned, wrapping the last connection error, when
// no node could be reached), [ErrSiblings] from [Versions.Value], and
// [ErrInvalidOption] for an option refused before sending.
package dynamo
