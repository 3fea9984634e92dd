//! The Go echo server's source: built by `plan::build_go` where `go` is on PATH.
/// The Go server: a goroutine per connection, the netpoller underneath (run with GOMAXPROCS=1).
pub const SOURCE: &str = r#"// Built and run by corering's examples/compare (the "go" row).
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	bufSize := flag.Int("buf", 16384, "read buffer per connection")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("READY data=%s ctl=-\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go echo(c.(*net.TCPConn), *bufSize)
	}
}

func echo(c *net.TCPConn, bufSize int) {
	defer c.Close()
	c.SetNoDelay(true)
	buf := make([]byte, bufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
"#;
