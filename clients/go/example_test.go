package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"sort"
	"strings"
	"time"

	"dynamo.dev/dynamo"
)

// Making a client of a three-node cluster with a token and a CA.
func ExampleNew() {
	client, err := dynamo.New(
		[]string{"https://10.0.0.1:7000", "https://10.0.0.2:7000", "https://10.0.0.3:7000"},
		dynamo.WithToken("client-token"),
		dynamo.WithCAFile("/etc/dynamo/ca.crt"),
		dynamo.WithTimeout(5*time.Second),
		dynamo.WithRetry(dynamo.RetryPolicy{Attempts: 4, Base: 100 * time.Millisecond, Cap: time.Second}),
	)
	if err != nil {
		log.Fatal(err)
	}
	_ = client
}

// Reading, then writing back with the read's context so that the write
// supersedes what was read.
func ExampleClient_Get() {
	client, err := dynamo.New([]string{"http://127.0.0.1:7000"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	v, err := client.Get(ctx, "users/42")
	if err != nil {
		log.Fatal(err)
	}
	switch len(v.Values) {
	case 0:
		fmt.Println("no value") // v.Context is set if the key was deleted
	case 1:
		fmt.Printf("value %q\n", v.Values[0])
	default:
		fmt.Printf("%d concurrent values to merge\n", len(v.Values))
	}
	if _, err := client.Put(ctx, "users/42", []byte("new"), dynamo.Causal(v.Context)); err != nil {
		log.Fatal(err)
	}
}

// Writing a value with a content type, metadata and a TTL, and reading
// them back per sibling.
func ExampleClient_Put() {
	client, err := dynamo.New([]string{"http://127.0.0.1:7000"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	_, err = client.Put(ctx, "sessions/9f2c", []byte(`{"user":42}`),
		dynamo.ContentType("application/json"),
		dynamo.Meta("owner", "auth-service"),
		dynamo.TTL(30*time.Minute)) // reads as deleted once it has passed
	if err != nil {
		log.Fatal(err)
	}
	v, err := client.Get(ctx, "sessions/9f2c")
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range v.Siblings { // the same versions as v.Values
		fmt.Println(s.ContentType, s.Meta["owner"], time.Until(s.ExpiresAt).Round(time.Minute))
	}
}

// A read-modify-write merging siblings: the value is a set of lines.
func ExampleClient_Update() {
	client, err := dynamo.New([]string{"http://127.0.0.1:7000"})
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.Update(context.Background(), "tags/article-7", func(siblings [][]byte) ([]byte, bool, error) {
		set := map[string]bool{"go": true} // the tag to add
		for _, s := range siblings {
			for _, tag := range strings.Fields(string(s)) {
				set[tag] = true
			}
		}
		tags := make([]string, 0, len(set))
		for tag := range set {
			tags = append(tags, tag)
		}
		sort.Strings(tags)
		return []byte(strings.Join(tags, "\n")), false, nil
	}, dynamo.W(2))
	if err != nil {
		log.Fatal(err)
	}
}

// Iterating over the keys under a prefix.
func ExampleClient_ListKeys() {
	client, err := dynamo.New([]string{"http://127.0.0.1:7000"})
	if err != nil {
		log.Fatal(err)
	}
	for key, err := range client.ListKeys(context.Background(), "users/", 500) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(key)
	}
}

// Versions.Value is the only value, or ErrSiblings.
func ExampleVersions_Value() {
	one := &dynamo.Versions{Key: "k", Values: [][]byte{[]byte("v")}}
	two := &dynamo.Versions{Key: "k", Values: [][]byte{[]byte("a"), []byte("b")}}
	none := &dynamo.Versions{Key: "k"}
	value, err := one.Value()
	fmt.Printf("%s %v\n", value, err)
	_, err = two.Value()
	fmt.Println(errors.Is(err, dynamo.ErrSiblings))
	_, err = none.Value()
	fmt.Println(errors.Is(err, dynamo.ErrNotFound), none.Exists())
	// Output:
	// v <nil>
	// true
	// true false
}

// Telling errors apart.
func ExampleError() {
	var err error = &dynamo.Error{Status: http.StatusServiceUnavailable, Code: "quorum_unavailable", Message: "write needed 2 of 3 replicas but only 1 answered"}
	fmt.Println(err)
	fmt.Println(errors.Is(err, dynamo.ErrUnavailable), errors.Is(err, dynamo.ErrUnauthorized))
	var apiErr *dynamo.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code)
	}
	// Output:
	// dynamo: 503 quorum_unavailable: write needed 2 of 3 replicas but only 1 answered
	// true false
	// 503 quorum_unavailable
}
