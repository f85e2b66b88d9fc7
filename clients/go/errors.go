package dynamo

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors, for use with [errors.Is].
var (
	// ErrUnauthorized matches a 401 answer: the node requires a bearer token
	// and the request carried none, or one the node does not know.
	ErrUnauthorized = errors.New("dynamo: unauthorized")
	// ErrForbidden matches a 403 answer: the token is valid but does not
	// cover the request (another role's token, a key outside the token's
	// prefix, a write with a read-only token).
	ErrForbidden = errors.New("dynamo: forbidden")
	// ErrNotFound matches a 404 answer (a delete without context of a key
	// with no live value, or a route the node does not have) and is returned
	// by [Versions.Value] when the key has no live value.
	ErrNotFound = errors.New("dynamo: not found")
	// ErrUnavailable matches a 503 answer (too few replicas answered, or
	// the node is overloaded) that was still there after the last retry,
	// and wraps the last connection error when no node could be reached.
	ErrUnavailable = errors.New("dynamo: unavailable")
	// ErrSiblings is returned by [Versions.Value] when the key holds
	// several concurrent versions: read [Versions.Values] and merge them.
	ErrSiblings = errors.New("dynamo: key has siblings")
	// ErrInvalidOption matches an option the client refuses before sending
	// anything: a [TTL] that is not positive or longer than [MaxTTL], a
	// [Meta] name that is not an HTTP header token or is given twice, a
	// [ContentType] or metadata value that is not printable ASCII, metadata
	// beyond the node's limits, or an attribute given to [Client.Delete].
	ErrInvalidOption = errors.New("dynamo: invalid option")
)

// Error is an error answer of a node: its HTTP status and the code and
// message of its JSON body ({"error": {"code": ..., "message": ...}}).
// Answers the HTTP layer rejects before the API sees them have no body;
// their Code is empty and Message the status text.
type Error struct {
	// Status is the HTTP status code, e.g. 400 or 503.
	Status int
	// Code is the node's machine-readable code, e.g. "invalid_parameter"
	// or "quorum_unavailable".
	Code string
	// Message is the node's human-readable explanation.
	Message string
}

// Error formats the status, code and message.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dynamo: %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is reports whether the error belongs to the class of a sentinel:
// [ErrUnauthorized] (401), [ErrForbidden] (403), [ErrNotFound] (404) or
// [ErrUnavailable] (503).
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// errorBody is the JSON shape of a node's error answers.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// apiError builds the *Error of a non-success answer.
func apiError(status int, body []byte) *Error {
	e := &Error{Status: status}
	var parsed errorBody
	if json.Unmarshal(body, &parsed) == nil && parsed.Error.Code != "" {
		e.Code = parsed.Error.Code
		e.Message = parsed.Error.Message
		return e
	}
	e.Message = http.StatusText(status)
	if text := strings.TrimSpace(string(body)); text != "" && len(text) <= 200 {
		e.Message = text
	}
	return e
}
