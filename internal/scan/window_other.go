//go:build !unix

package scan

// queueWindow sizes the ordered window; see the Unix version.
func queueWindow() int { return maxWindow }
