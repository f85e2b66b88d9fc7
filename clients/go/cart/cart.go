// Package cart is the shopping cart of the Dynamo paper kept in the store as
// an observed-remove set (OR-set), in the JSON layout every client library
// of the store shares:
//
//	{"adds": {"<item>": ["<tag>", ...]}, "removes": {"<item>": ["<tag>", ...]}}
//
// An item is in the cart while one of its add tags is not in its removes.
// Adding an item adds a new random tag; removing it copies the add tags the
// remover sees into removes. Siblings merge by union, so an add concurrent
// with a remove survives it and no add is ever lost.
package cart

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"dynamo.dev/dynamo"
)

// Cart is an OR-set of items. The zero value is an empty cart.
type Cart struct {
	// Adds maps each item to the tags of its adds.
	Adds map[string][]string `json:"adds"`
	// Removes maps each item to the add tags removed.
	Removes map[string][]string `json:"removes"`
}

// Decode parses a cart's JSON; an empty value is an empty cart.
func Decode(data []byte) (*Cart, error) {
	c := &Cart{}
	if len(data) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("cart: malformed cart: %w", err)
	}
	return c, nil
}

// Merge decodes siblings and merges them into one cart (the union of their
// adds and of their removes).
func Merge(siblings [][]byte) (*Cart, error) {
	merged := &Cart{}
	for _, s := range siblings {
		c, err := Decode(s)
		if err != nil {
			return nil, err
		}
		merged.Merge(c)
	}
	return merged, nil
}

// Merge adds other's adds and removes to c.
func (c *Cart) Merge(other *Cart) {
	c.Adds = union(c.Adds, other.Adds)
	c.Removes = union(c.Removes, other.Removes)
}

// Add puts item in the cart under a new unique tag.
func (c *Cart) Add(item string) {
	if c.Adds == nil {
		c.Adds = map[string][]string{}
	}
	c.Adds[item] = append(c.Adds[item], newTag())
}

// Remove takes item out of the cart: every add tag of it seen so far is
// removed. Adds this cart has not seen (concurrent ones) survive.
func (c *Cart) Remove(item string) {
	if len(c.Adds[item]) == 0 {
		return
	}
	if c.Removes == nil {
		c.Removes = map[string][]string{}
	}
	c.Removes = union(c.Removes, map[string][]string{item: c.Adds[item]})
}

// Has reports whether item is in the cart.
func (c *Cart) Has(item string) bool {
	for _, tag := range c.Adds[item] {
		if !slices.Contains(c.Removes[item], tag) {
			return true
		}
	}
	return false
}

// Items lists the items in the cart, sorted.
func (c *Cart) Items() []string {
	items := []string{}
	for item := range c.Adds {
		if c.Has(item) {
			items = append(items, item)
		}
	}
	sort.Strings(items)
	return items
}

// Encode is the cart's JSON, with sorted tags so that equal carts encode
// equally.
func (c *Cart) Encode() ([]byte, error) {
	out := Cart{Adds: union(nil, c.Adds), Removes: union(nil, c.Removes)}
	return json.Marshal(out)
}

// union is a ∪ b per item, each tag list sorted and without duplicates; it
// never returns nil.
func union(a, b map[string][]string) map[string][]string {
	out := make(map[string][]string, len(a)+len(b))
	for _, m := range []map[string][]string{a, b} {
		for item, tags := range m {
			out[item] = append(out[item], tags...)
		}
	}
	for item, tags := range out {
		slices.Sort(tags)
		out[item] = slices.Compact(tags)
	}
	return out
}

// newTag is a random UUID version 4 in hex (32 characters).
func newTag() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:])
}

// Load reads the cart stored under key, merging its siblings.
func Load(ctx context.Context, client *dynamo.Client, key string, opts ...dynamo.ReadOption) (*Cart, error) {
	v, err := client.Get(ctx, key, opts...)
	if err != nil {
		return nil, err
	}
	return Merge(v.Values)
}

// Change applies change to the cart stored under key with
// [dynamo.Client.Update]: it merges the siblings, applies change and writes
// the result with the read's context. It returns the cart written.
func Change(ctx context.Context, client *dynamo.Client, key string, change func(*Cart), opts ...dynamo.WriteOption) (*Cart, error) {
	var written *Cart
	_, err := client.Update(ctx, key, func(siblings [][]byte) ([]byte, bool, error) {
		c, err := Merge(siblings)
		if err != nil {
			return nil, false, err
		}
		change(c)
		written = c
		data, err := c.Encode()
		return data, false, err
	}, opts...)
	if err != nil {
		return nil, err
	}
	return written, nil
}

// Add adds item to the cart stored under key.
func Add(ctx context.Context, client *dynamo.Client, key, item string, opts ...dynamo.WriteOption) (*Cart, error) {
	return Change(ctx, client, key, func(c *Cart) { c.Add(item) }, opts...)
}

// Remove removes item from the cart stored under key.
func Remove(ctx context.Context, client *dynamo.Client, key, item string, opts ...dynamo.WriteOption) (*Cart, error) {
	return Change(ctx, client, key, func(c *Cart) { c.Remove(item) }, opts...)
}
