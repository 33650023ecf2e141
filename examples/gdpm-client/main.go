// Command gdpm-client is the command line of a gdpm cluster: it lists nodes
// and services, creates, scales and deletes services, prints and follows
// their output, and follows the cluster's events through a master's HTTP
// API.
//
//	gdpm-client get nodes
//	gdpm-client create -r 3 -- python3 -u /srv/app.py
//	gdpm-client update 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c -r 5
//	gdpm-client logs -f 9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c
//	gdpm-client -o json get services
//	gdpm-client events
//	gdpm-client get services -w
//	source <(gdpm-client completion bash)
//
// Run "gdpm-client -h" for every verb and flag.
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
