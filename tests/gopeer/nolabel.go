//go:build !memberlist_label

// memberlist 0.2.2 has no Config.Label: a peer asked for one refuses to start.
package main

import "github.com/hashicorp/memberlist"

const labelsSupported = false

func setLabel(cfg *memberlist.Config, label string, skipInboundCheck bool) {}
