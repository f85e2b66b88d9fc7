package cart_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"dynamo.dev/dynamo"
	"dynamo.dev/dynamo/cart"
	"dynamo.dev/dynamo/internal/testcluster"
)

// TestCartThroughAPartition is the shopping cart of the Dynamo paper: two
// writers change one cart through different nodes while n1 is cut off from
// n2 and n3, the network heals, the replicas converge, and the merged cart
// holds every add not removed (an add wins over a concurrent remove).
func TestCartThroughAPartition(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "dynamo-go-cart-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := testcluster.Start(dir, testcluster.Options{
		Args: []string{"--anti-entropy-interval-ms=500", "--handoff-interval-ms=500"},
	})
	if err != nil {
		os.RemoveAll(dir) // the error holds the log's tail
		t.Fatalf("starting the cluster: %v", err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("proxies: %s", c.Proxies())
			t.Logf("node logs kept in %s", dir)
			for _, n := range c.Nodes {
				t.Logf("%s log tail:\n%s", n.ID, c.LogTail(n, 15))
			}
			return
		}
		os.RemoveAll(dir)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n1, n2 := c.Nodes[0], c.Nodes[1]
	retry := dynamo.WithRetry(dynamo.RetryPolicy{Attempts: 4, Base: 50 * time.Millisecond, Cap: 500 * time.Millisecond})
	writerA, err := dynamo.New([]string{n1.URL()}, retry)
	if err != nil {
		t.Fatal(err)
	}
	writerB, err := dynamo.New([]string{n2.URL()}, retry)
	if err != nil {
		t.Fatal(err)
	}
	const key = "carts/alice"

	// Before the partition both sides see milk and eggs.
	for _, item := range []string{"milk", "eggs"} {
		if _, err := cart.Add(ctx, writerA, key, item); err != nil {
			t.Fatalf("adding %s: %v", item, err)
		}
	}
	seen, err := cart.Load(ctx, writerB, key)
	if err != nil || !slices.Equal(seen.Items(), []string{"eggs", "milk"}) {
		t.Fatalf("before the partition n2 reads %v (%v), want eggs and milk", seen, err)
	}

	// Cut n1 off from n2 and n3 (clients still reach every node).
	c.Isolate(0, true)
	once := dynamo.WithRetry(dynamo.RetryPolicy{Attempts: 1})
	probeA, _ := dynamo.New([]string{n1.URL()}, once)
	probeB, _ := dynamo.New([]string{n2.URL()}, once)
	err = testcluster.WaitUntil(ctx, 30*time.Second, func() bool {
		// n1 alone cannot reach a second replica; n2 reaches n3 but not
		// n1.
		_, errA := probeA.Put(ctx, "probe/a", []byte("x"), dynamo.W(2))
		_, errB2 := probeB.Put(ctx, "probe/b", []byte("x"), dynamo.W(2))
		_, errB3 := probeB.Put(ctx, "probe/b", []byte("x"), dynamo.W(3))
		if !errors.Is(errA, dynamo.ErrUnavailable) || errB2 != nil || !errors.Is(errB3, dynamo.ErrUnavailable) {
			return false
		}
		// And the failure detectors noticed: writes go on regardless.
		return states(c, 0)["n2"] != "alive" && states(c, 0)["n3"] != "alive" &&
			states(c, 1)["n1"] != "alive" && states(c, 1)["n3"] == "alive"
	})
	if err != nil {
		t.Fatalf("the partition did not take: %v (proxies: %s)", err, c.Proxies())
	}

	// Each side writes with w = 1 (n1 alone has no second replica), A reads
	// with r = 1 for the same reason.
	type op struct {
		add  bool
		item string
	}
	sideA := []op{{true, "bread"}, {true, "butter"}, {false, "eggs"}, {true, "cheese"}, {false, "milk"}, {true, "tea"}, {false, "tea"}}
	sideB := []op{{true, "wine"}, {true, "beer"}, {false, "beer"}, {true, "milk"}, {false, "bread"}, {true, "jam"}}
	run := func(client *dynamo.Client, ops []op, opts ...dynamo.WriteOption) error {
		for _, o := range ops {
			change, what := (*cart.Cart).Remove, "removing"
			if o.add {
				change, what = (*cart.Cart).Add, "adding"
			}
			written, err := cart.Change(ctx, client, key, func(c *cart.Cart) { change(c, o.item) }, opts...)
			if err != nil {
				return fmt.Errorf("%s %s: %w", what, o.item, err)
			}
			if written.Has(o.item) != o.add {
				return fmt.Errorf("after %s %s the cart holds %v", what, o.item, written.Items())
			}
			time.Sleep(20 * time.Millisecond) // interleave the two writers
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = run(writerA, sideA, dynamo.R(1), dynamo.W(1)) }()
	go func() { defer wg.Done(); errs[1] = run(writerB, sideB, dynamo.W(1)) }()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("writing during the partition: %v", err)
	}

	// Neither side saw the other's changes.
	viewA, err := cart.Load(ctx, writerA, key, dynamo.R(1))
	if err != nil {
		t.Fatal(err)
	}
	viewB, err := cart.Load(ctx, writerB, key)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bread", "butter", "cheese"}; !slices.Equal(viewA.Items(), want) {
		t.Fatalf("n1's side reads %v during the partition, want %v", viewA.Items(), want)
	}
	if want := []string{"eggs", "jam", "milk", "wine"}; !slices.Equal(viewB.Items(), want) {
		t.Fatalf("n2's side reads %v during the partition, want %v", viewB.Items(), want)
	}
	// Heal, then wait until every node reads the same cart twice in a row
	// (anti-entropy, hinted handoff and read repair at work).
	c.Isolate(0, false)
	healed := time.Now()
	readers := make([]*dynamo.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		readers[i], _ = dynamo.New([]string{n.URL()}, retry)
	}
	var agreed []string
	streak := 0
	err = testcluster.WaitUntil(ctx, 90*time.Second, func() bool {
		var first []string
		for i, r := range readers {
			v, err := r.Get(ctx, key, dynamo.R(1))
			if err != nil {
				streak = 0
				return false
			}
			merged, err := cart.Merge(v.Values)
			if err != nil {
				t.Fatalf("node %d holds a cart that does not parse: %v", i+1, err)
			}
			if i == 0 {
				first = merged.Items()
			} else if !slices.Equal(first, merged.Items()) {
				streak = 0
				return false
			}
		}
		if slices.Equal(first, agreed) {
			streak++
		} else {
			agreed, streak = first, 1
		}
		return streak >= 2
	})
	if err != nil {
		t.Fatalf("the nodes did not agree after the heal: %v", err)
	}
	t.Logf("every node agrees %v after the heal", time.Since(healed).Round(100*time.Millisecond))

	// Every add not removed is there, milk because B re-added it while A
	// removed it; eggs, tea and beer were removed after their add.
	want := []string{"bread", "butter", "cheese", "jam", "milk", "wine"}
	if !slices.Equal(agreed, want) {
		t.Fatalf("after the heal the cart holds %v, want %v", agreed, want)
	}

	// Resolving the siblings leaves one value, read the same everywhere.
	if _, err := cart.Change(ctx, writerA, key, func(*cart.Cart) {}); err != nil {
		t.Fatalf("resolving: %v", err)
	}
	for i, r := range readers {
		v, err := r.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		merged, _ := cart.Merge(v.Values)
		if len(v.Values) != 1 || !slices.Equal(merged.Items(), want) {
			t.Fatalf("after resolving, n%d reads %d values holding %v", i+1, len(v.Values), merged.Items())
		}
	}
	t.Logf("proxies: %s", c.Proxies())
}

// states is how node i sees the members: id -> alive, suspect, down or
// unknown (from /v1/status).
func states(c *testcluster.Cluster, i int) map[string]string {
	out := map[string]string{}
	resp, err := c.HTTP.Get(c.Nodes[i].URL() + "/v1/status")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	var status struct {
		Members []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"members"`
	}
	if json.NewDecoder(resp.Body).Decode(&status) == nil {
		for _, m := range status.Members {
			out[m.ID] = m.State
		}
	}
	return out
}
