package cli

import "errors"

// capabilityText is replaced by fsys.CapabilityText once fsys lands.
func capabilityText([]byte) (string, error) { return "", errors.New("not decoded") }
