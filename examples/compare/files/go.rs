//! The Go file runner, built with `go build` when `go` is on PATH and run with GOMAXPROCS=1.
//! It does what the Rust runners do (see `measure`): the same sizes, phases, offsets and
//! result line, with `os.File.ReadAt` from 64 goroutines and one goroutine writing and
//! calling `Sync`. A file read is a plain blocking syscall in Go (regular files bypass the
//! netpoller); the scheduler hands the P to another thread when one blocks for long. Latency
//! quantiles come from a log-linear histogram (32 buckets per power of two, about 3%).

pub const SOURCE: &str = r#"// Built and run by corering's examples/compare (the "go" row of the file cases).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/bits"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	readFile  = 256 << 20
	readSize  = 4096
	inFlight  = 64
	chunk     = 64 << 10
	syncEvery = 16
	writeCap  = 256 << 20
)

const (
	warmup int32 = iota
	measure
	stop
)

var phase int32 = warmup

type mark struct {
	at        time.Time
	user, sys float64
}

func now() mark {
	var ru syscall.Rusage
	at := time.Now()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	s := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return mark{at, s(ru.Utime), s(ru.Stime)}
}

var start, end mark
var endMu sync.Mutex

// finish ends the window once: at the deadline, or when the writer reaches the cap.
func finish() {
	m := now()
	endMu.Lock()
	if atomic.CompareAndSwapInt32(&phase, measure, stop) {
		end = m
	}
	atomic.StoreInt32(&phase, stop)
	endMu.Unlock()
}

type hist struct {
	counts [2048]uint64
	n      uint64
}

func (h *hist) record(ns uint64) {
	i := ns
	if ns >= 64 {
		e := uint(bits.Len64(ns) - 6)
		i = 64 + uint64(e-1)*32 + (ns>>e - 32)
	}
	h.counts[i]++
	h.n++
}

func (h *hist) add(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile in microseconds (the middle of the bucket), or nil if empty.
func (h *hist) quantile(q float64) interface{} {
	if h.n == 0 {
		return nil
	}
	want := uint64(q * float64(h.n))
	if want < 1 {
		want = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= want {
			if i < 64 {
				return float64(i) / 1000
			}
			e := uint((i-64)/32 + 1)
			lo := uint64(32+(i-64)%32) << e
			return (float64(lo) + float64(uint64(1)<<e)/2) / 1000
		}
	}
	return nil
}

type tally struct {
	ops, bytes, syncs, errors uint64
	lat, syncLat              hist
	firstError                interface{}
}

func (t *tally) fail(msg string) {
	t.errors++
	if t.firstError == nil {
		t.firstError = msg
	}
}

func (t *tally) op(t0 time.Time, n int) {
	if atomic.LoadInt32(&phase) == measure {
		t.ops++
		t.bytes += uint64(n)
		t.lat.record(uint64(time.Since(t0).Nanoseconds()))
	}
}

func (t *tally) merge(o *tally) {
	t.ops += o.ops
	t.bytes += o.bytes
	t.syncs += o.syncs
	t.errors += o.errors
	t.lat.add(&o.lat)
	t.syncLat.add(&o.syncLat)
	if t.firstError == nil {
		t.firstError = o.firstError
	}
}

func reader(f *os.File, i int, t *tally, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, readSize)
	x := (uint64(i)+1)*0x9E3779B97F4A7C15 | 1
	for atomic.LoadInt32(&phase) != stop {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		r := (x * 0x2545F4914F6CDD1D) >> 11
		off := int64(r%(readFile/readSize)) * readSize
		t0 := time.Now()
		n, err := f.ReadAt(buf, off)
		if err != nil || n != readSize {
			t.fail(fmt.Sprintf("read at %d: %d bytes, %v", off, n, err))
			return
		}
		t.op(t0, n)
	}
}

func writer(f *os.File, t *tally, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i % 251)
	}
	for n := uint64(1); atomic.LoadInt32(&phase) != stop; n++ {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			t.fail(fmt.Sprintf("write: %v", err))
			return
		}
		t.op(t0, chunk)
		if n%syncEvery == 0 {
			t0 := time.Now()
			if err := f.Sync(); err != nil {
				t.fail(fmt.Sprintf("fsync: %v", err))
				return
			}
			if atomic.LoadInt32(&phase) == measure {
				t.syncs++
				t.syncLat.record(uint64(time.Since(t0).Nanoseconds()))
			}
			if t.bytes >= writeCap {
				finish()
			}
		}
	}
}

func unpinned() interface{} {
	allowed := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return ""
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Cpus_allowed_list:") {
				return strings.TrimSpace(strings.TrimPrefix(l, "Cpus_allowed_list:"))
			}
		}
		return ""
	}
	own := allowed("/proc/self/status")
	tasks, err := os.ReadDir("/proc/self/task")
	if own == "" || err != nil {
		return nil
	}
	n := 0
	for _, e := range tasks {
		if a := allowed("/proc/self/task/" + e.Name() + "/status"); a != "" && a != own {
			n++
		}
	}
	return n
}

func main() {
	kind := flag.String("case", "", "file_random_read or file_write_fsync")
	path := flag.String("path", "", "the file")
	warm := flag.Float64("warmup", 0.3, "warm-up seconds")
	secs := flag.Float64("seconds", 1, "measured seconds")
	flag.Parse()
	var f *os.File
	var err error
	var wg sync.WaitGroup
	tallies := make([]tally, inFlight)
	switch *kind {
	case "file_random_read":
		if f, err = os.Open(*path); err == nil {
			for i := range tallies {
				wg.Add(1)
				go reader(f, i, &tallies[i], &wg)
			}
		}
	case "file_write_fsync":
		if f, err = os.OpenFile(*path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err == nil {
			wg.Add(1)
			go writer(f, &tallies[0], &wg)
		}
	default:
		err = fmt.Errorf("no case %q", *kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	time.Sleep(time.Duration(*warm * 1e9))
	start = now()
	atomic.StoreInt32(&phase, measure)
	deadline := start.at.Add(time.Duration(*secs * 1e9))
	for atomic.LoadInt32(&phase) == measure {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if left > 20*time.Millisecond {
			left = 20 * time.Millisecond
		}
		time.Sleep(left)
	}
	finish()
	wg.Wait()
	f.Close()
	var t tally
	for i := range tallies {
		t.merge(&tallies[i])
	}
	if end.at.IsZero() {
		end = start
	}
	out, _ := json.Marshal(map[string]interface{}{
		"ops": t.ops, "bytes": t.bytes, "secs": end.at.Sub(start.at).Seconds(),
		"user_s": end.user - start.user, "sys_s": end.sys - start.sys,
		"p50_us": t.lat.quantile(0.5), "p99_us": t.lat.quantile(0.99),
		"p999_us": t.lat.quantile(0.999), "syncs": t.syncs,
		"sync_p50_us": t.syncLat.quantile(0.5), "sync_p99_us": t.syncLat.quantile(0.99),
		"errors": t.errors, "first_error": t.firstError, "pool_peak": nil,
		"unpinned_threads": unpinned(),
	})
	fmt.Println(string(out))
}
"#;
