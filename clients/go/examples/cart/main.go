// Command cart keeps a shopping cart in the store, as the Dynamo paper does:
// an OR-set (package dynamo.dev/dynamo/cart) written with Client.Update, so
// that concurrent changes through different nodes merge without losing an
// add.
//
//	go run ./examples/cart -url http://127.0.0.1:7000 add milk eggs
//	go run ./examples/cart -url http://127.0.0.1:7000 remove eggs
//	go run ./examples/cart -url http://127.0.0.1:7000 list
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"dynamo.dev/dynamo"
	"dynamo.dev/dynamo/cart"
)

func main() {
	urls := flag.String("url", "http://127.0.0.1:7000", "node URLs, comma-separated")
	key := flag.String("key", "carts/demo", "key of the cart")
	token := flag.String("token", os.Getenv("DYNAMO_TOKEN"), "client bearer token (default $DYNAMO_TOKEN)")
	caFile := flag.String("ca", "", "CA bundle (PEM) to trust for https:// URLs")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] add ITEM... | remove ITEM... | list\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*urls, *key, *token, *caFile, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "cart:", err)
		os.Exit(1)
	}
}

func run(urls, key, token, caFile string, args []string) error {
	if len(args) == 0 {
		flag.Usage()
		return fmt.Errorf("no command")
	}
	opts := []dynamo.Option{dynamo.WithToken(token)}
	if caFile != "" {
		opts = append(opts, dynamo.WithCAFile(caFile))
	}
	client, err := dynamo.New(strings.Split(urls, ","), opts...)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	var c *cart.Cart
	switch command, items := args[0], args[1:]; command {
	case "add", "remove":
		if len(items) == 0 {
			return fmt.Errorf("%s needs at least one item", command)
		}
		c, err = cart.Change(ctx, client, key, func(c *cart.Cart) {
			for _, item := range items {
				if command == "add" {
					c.Add(item)
				} else {
					c.Remove(item)
				}
			}
		})
	case "list":
		c, err = cart.Load(ctx, client, key)
	default:
		flag.Usage()
		return fmt.Errorf("unknown command %q", command)
	}
	if err != nil {
		return err
	}
	for _, item := range c.Items() {
		fmt.Println(item)
	}
	return nil
}
