module github.com/vigilfim/vigil

go 1.26.8

require (
	github.com/elastic/go-libaudit/v2 v2.6.2
	golang.org/x/sys v0.49.0
)

require (
	github.com/elastic/go-licenser v0.4.1 // indirect
	github.com/fsnotify/fsnotify v1.10.1 // indirect
)
