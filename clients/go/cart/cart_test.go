package cart_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"dynamo.dev/dynamo/cart"
)

func TestORSet(t *testing.T) {
	c := &cart.Cart{}
	c.Add("milk")
	c.Add("eggs")
	c.Remove("eggs")
	c.Remove("nothing") // removing what is not there changes nothing
	if got := c.Items(); !slices.Equal(got, []string{"milk"}) {
		t.Fatalf("items %q, want milk", got)
	}
	if len(c.Removes["nothing"]) != 0 {
		t.Fatalf("removing an absent item recorded %q", c.Removes["nothing"])
	}

	// Two replicas diverge from one state.
	data, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	left, _ := cart.Decode(data)
	right, _ := cart.Decode(data)
	left.Remove("milk") // removes the add it saw
	right.Add("milk")   // a concurrent add: survives the remove
	right.Add("bread")
	left.Remove("bread") // bread's add was not seen: nothing to remove
	l, _ := left.Encode()
	r, _ := right.Encode()
	merged, err := cart.Merge([][]byte{l, r})
	if err != nil {
		t.Fatal(err)
	}
	if got := merged.Items(); !slices.Equal(got, []string{"bread", "milk"}) {
		t.Fatalf("merged items %q, want bread and milk (an add wins over a concurrent remove)", got)
	}
	// Merging is commutative and idempotent, and encoding deterministic.
	again, _ := cart.Merge([][]byte{r, l, l})
	a, _ := merged.Encode()
	b, _ := again.Encode()
	if !bytes.Equal(a, b) {
		t.Fatalf("merges differ:\n%s\n%s", a, b)
	}
	// Removing after the merge removes every add seen.
	merged.Remove("milk")
	if merged.Has("milk") {
		t.Fatal("milk still there after removing every add of it")
	}
}

func TestLayout(t *testing.T) {
	c, err := cart.Decode(nil)
	if err != nil || len(c.Items()) != 0 {
		t.Fatalf("an empty value: %+v, %v; want an empty cart", c, err)
	}
	data, err := c.Encode()
	if err != nil || string(data) != `{"adds":{},"removes":{}}` {
		t.Fatalf("an empty cart encodes as %s, %v", data, err)
	}
	c.Add("tea")
	data, _ = c.Encode()
	var raw struct {
		Adds    map[string][]string `json:"adds"`
		Removes map[string][]string `json:"removes"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	tags := raw.Adds["tea"]
	if len(tags) != 1 || len(tags[0]) != 32 || tags[0][12] != '4' {
		t.Fatalf("tag %q, want uuid4 hex (32 characters, version 4)", tags)
	}
	// The layout every client library shares.
	other := []byte(`{"adds": {"tea": ["t1", "t2"], "jam": ["t3"]}, "removes": {"tea": ["t1"], "jam": ["t3"]}}`)
	c, err = cart.Decode(other)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Items(); !slices.Equal(got, []string{"tea"}) {
		t.Fatalf("items %q, want tea", got)
	}
	if _, err := cart.Decode([]byte("not json")); err == nil {
		t.Fatal("Decode accepted a value that is not JSON")
	}
}
