//go:build memberlist_label

// Labels (memberlist >= 0.3.0): built with -tags memberlist_label against 0.5.0's sources.
package main

import "github.com/hashicorp/memberlist"

const labelsSupported = true

func setLabel(cfg *memberlist.Config, label string, skipInboundCheck bool) {
	cfg.Label = label
	cfg.SkipInboundLabelCheck = skipInboundCheck
}
