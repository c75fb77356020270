package signing

// Load reads an existing private key. Unlike LoadOrCreate it never makes a
// key: verifying a baseline with a freshly made key would only say
// "unknown signer", and making one would hide that the real key is gone.
func Load(path string) (*Key, error) {
	return load(path)
}
