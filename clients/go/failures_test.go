package dynamo_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"dynamo.dev/dynamo"
	"dynamo.dev/dynamo/internal/testcluster"
)

// TestNodeFailures stops nodes of a cluster of its own, one after the
// other: failover with n1 down, then 503s and their retries with n1 and n2
// down, then cancellation during the backoff, then no node reachable.
func TestNodeFailures(t *testing.T) {
	t.Parallel()
	c := ownCluster(t, testcluster.Options{})
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	k := key(t, "k")
	// Written while every node is up, so that reads later have a value.
	mustPut(t, newClient(t, c.URLs()), k, "before")
	c.StopNode(0)

	t.Run("failover to the next URL", func(t *testing.T) {
		rec := newRecorder()
		client := newClient(t, []string{n1.URL(), n2.URL()}, dynamo.WithHTTPClient(rec.client()))
		start := time.Now()
		v := mustGet(t, client, k)
		if got := strs(v.Values); !slices.Equal(got, []string{"before"}) {
			t.Fatalf("read %q through the failover", got)
		}
		sent := rec.take()
		if len(sent) != 2 || sent[0].Host != n1.Client || sent[0].Err == nil || sent[1].Host != n2.Client || sent[1].Status != 200 {
			t.Fatalf("requests %+v, want a connection error at %s then 200 from %s", sent, n1.Client, n2.Client)
		}
		var op *net.OpError
		if !errors.As(sent[0].Err, &op) || op.Op != "dial" {
			t.Fatalf("the first attempt failed with %v, want a dial error", sent[0].Err)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("failing over took %v; it should not back off before trying a fresh node", elapsed)
		}
		// The client now starts with the node that answered.
		mustPut(t, client, k, "after", dynamo.Causal(v.Context))
		if sent := rec.take(); len(sent) != 1 || sent[0].Host != n2.Client || sent[0].Status != 204 {
			t.Fatalf("the next call sent %+v, want one request to %s", sent, n2.Client)
		}
	})

	c.StopNode(1)

	t.Run("503 is retried then ErrUnavailable", func(t *testing.T) {
		rec := newRecorder()
		client := newClient(t, []string{n3.URL()}, dynamo.WithHTTPClient(rec.client()),
			dynamo.WithRetry(dynamo.RetryPolicy{Attempts: 3, Base: 10 * time.Millisecond, Cap: 100 * time.Millisecond}))
		ctx := testContext(t)
		_, err := client.Put(ctx, k, []byte("w=2 needs two replicas"))
		var apiErr *dynamo.Error
		if !errors.Is(err, dynamo.ErrUnavailable) || !errors.As(err, &apiErr) || apiErr.Status != 503 || apiErr.Code == "" {
			t.Fatalf("Put with one node of three: %v, want a 503 *Error matching ErrUnavailable", err)
		}
		t.Logf("the node answered: %v", apiErr)
		sent := rec.take()
		if len(sent) != 3 {
			t.Fatalf("%d requests sent, want 3 (the policy's attempts): %+v", len(sent), sent)
		}
		for _, s := range sent {
			if s.Status != 503 {
				t.Fatalf("requests %+v, want three 503s", sent)
			}
		}
		// Each 503 left a version on n3 and carried the context to retry
		// with: the retries replaced it, so the value is there once.
		if sent[0].Header.Get("X-Dynamo-Context") != "" || sent[1].Header.Get("X-Dynamo-Context") == "" || sent[2].Header.Get("X-Dynamo-Context") == "" {
			t.Fatalf("contexts sent %q, %q, %q; want none, then the 503s'", sent[0].Header.Get("X-Dynamo-Context"), sent[1].Header.Get("X-Dynamo-Context"), sent[2].Header.Get("X-Dynamo-Context"))
		}
		// Reads need r = 2 replicas too; r = 1 does with one.
		if _, err := client.Get(ctx, k); !errors.Is(err, dynamo.ErrUnavailable) {
			t.Fatalf("Get with r=2 and one node up: %v, want ErrUnavailable", err)
		}
		v, err := client.Get(ctx, k, dynamo.R(1))
		if err != nil || !v.Exists() {
			t.Fatalf("Get with r=1 and one node up: %+v, %v, want the value", v, err)
		}
		got := strs(v.Values)
		retried := slices.DeleteFunc(slices.Clone(got), func(s string) bool { return s != "w=2 needs two replicas" })
		if len(retried) != 1 || len(got) != 2 {
			t.Fatalf("values %q after three 503s, want the earlier one and the retried one once", got)
		}
	})

	t.Run("cancellation during the backoff", func(t *testing.T) {
		rec := newRecorder()
		client := newClient(t, []string{n3.URL()}, dynamo.WithHTTPClient(rec.client()),
			dynamo.WithRetry(dynamo.RetryPolicy{Attempts: 10, Base: time.Hour, Cap: time.Hour}))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		canceled := make(chan time.Time, 1)
		rec.after = func(s sent) {
			// After the first answer (a 503) the client backs off for up
			// to an hour; cancel 100 ms into it.
			time.AfterFunc(100*time.Millisecond, func() {
				select {
				case canceled <- time.Now():
					cancel()
				default:
				}
			})
		}
		_, err := client.Put(ctx, k, []byte("v"))
		returned := time.Now()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put: %v, want context.Canceled", err)
		}
		if sent := rec.take(); len(sent) != 1 || sent[0].Status != 503 {
			t.Fatalf("requests %+v, want one 503 before the backoff", sent)
		}
		at := <-canceled
		if lag := returned.Sub(at); lag > 500*time.Millisecond {
			t.Fatalf("Put returned %v after the cancellation, want promptly", lag)
		}

		// A deadline ends the backoff the same way.
		rec.after = nil
		ctx, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel2()
		start := time.Now()
		_, err = client.Put(ctx, k, []byte("v"))
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
			t.Fatalf("Put with a 1.5 s deadline: %v after %v, want DeadlineExceeded promptly", err, time.Since(start))
		}
	})

	t.Run("no node reachable", func(t *testing.T) {
		rec := newRecorder()
		client := newClient(t, []string{n1.URL(), n2.URL()}, dynamo.WithHTTPClient(rec.client()),
			dynamo.WithRetry(dynamo.RetryPolicy{Attempts: 4, Base: 10 * time.Millisecond, Cap: 50 * time.Millisecond}))
		_, err := client.Get(testContext(t), k)
		var op *net.OpError
		if !errors.Is(err, dynamo.ErrUnavailable) || !errors.As(err, &op) {
			t.Fatalf("Get with every node down: %v, want ErrUnavailable wrapping the connection error", err)
		}
		sent := rec.take()
		if len(sent) != 4 || sent[0].Host != n1.Client || sent[1].Host != n2.Client || sent[2].Host != n1.Client {
			t.Fatalf("requests %+v, want 4 alternating between the two URLs", sent)
		}
	})
}
