// The Go peer of goro's side-by-side benchmarks (bench/compare/run.py).
//
// Usage: peer <workload>; prints "<workload> <milliseconds>" ("idle <bytes-per-goroutine>").
// Exit status 1: the workload computed a wrong result; 64: no such workload. The same
// workloads, with the same sizes, are in bench/compare/goro_peer.cpp and
// bench/peers/boostfiber/main.cpp; the C++ sizes are in bench/peers/peer.hpp.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	skynetSize  = 1_000_000 // leaves; 1,111,111 goroutines in all
	skynetDiv   = 10
	spawnN      = 1_000_000
	pingpongN   = 1_000_000
	bufferedN   = 1_000_000
	bufferedCap = 1024
	mpmcN       = 1_000_000 // in total, over all producers
	mpmcProcs   = 4         // producers, and as many consumers
	mpmcCap     = 128
	idleN       = 100_000
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func skynet(c chan<- int, num, size, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	size /= div
	for i := 0; i < div; i++ {
		go skynet(rc, num+i*size, size, div)
	}
	sum := 0
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func runSkynet() {
	c := make(chan int)
	go skynet(c, 0, skynetSize, skynetDiv)
	if sum := <-c; sum != skynetSize*(skynetSize-1)/2 {
		fail("skynet: sum %d", sum)
	}
}

func runSpawn() {
	var wg sync.WaitGroup
	wg.Add(spawnN)
	for i := 0; i < spawnN; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
}

func runPingpong() {
	ping, pong := make(chan int), make(chan int)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < pingpongN; i++ {
			ping <- i
			if v := <-pong; v != i {
				fail("pingpong: got %d, want %d", v, i)
			}
		}
		close(ping)
	}()
	go func() {
		defer wg.Done()
		for v := range ping {
			pong <- v
		}
	}()
	wg.Wait()
}

func runBuffered() {
	ch := make(chan int, bufferedCap)
	go func() {
		for i := 0; i < bufferedN; i++ {
			ch <- i
		}
		close(ch)
	}()
	sum := 0
	done := make(chan struct{})
	go func() {
		for v := range ch {
			sum += v
		}
		close(done)
	}()
	<-done
	if sum != bufferedN*(bufferedN-1)/2 {
		fail("buffered: sum %d", sum)
	}
}

func runMpmc() {
	ch := make(chan int, mpmcCap)
	var producers, consumers sync.WaitGroup
	per := mpmcN / mpmcProcs
	sums := make([]int, mpmcProcs)
	producers.Add(mpmcProcs)
	consumers.Add(mpmcProcs)
	for p := 0; p < mpmcProcs; p++ {
		go func(p int) {
			defer producers.Done()
			for i := p * per; i < (p+1)*per; i++ {
				ch <- i
			}
		}(p)
	}
	for c := 0; c < mpmcProcs; c++ {
		go func(c int) {
			defer consumers.Done()
			s := 0
			for v := range ch {
				s += v
			}
			sums[c] = s
		}(c)
	}
	producers.Wait()
	close(ch)
	consumers.Wait()
	total := 0
	for _, s := range sums {
		total += s
	}
	if total != mpmcN*(mpmcN-1)/2 {
		fail("mpmc: sum %d", total)
	}
}

// statusKB reads a field such as "VmRSS" (in kB) from /proc/self/status.
func statusKB(field string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fail("idle: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, field+":") {
			kb, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				fail("idle: %v", err)
			}
			return kb
		}
	}
	fail("idle: no %s in /proc/self/status", field)
	return 0
}

// runIdle returns the peak RSS per parked goroutine, in bytes.
func runIdle() int {
	gate := make(chan int)
	var started, finished sync.WaitGroup
	started.Add(idleN)
	finished.Add(idleN)
	base := statusKB("VmRSS")
	for i := 0; i < idleN; i++ {
		go func() {
			started.Done()
			if _, ok := <-gate; ok {
				fail("idle: received a value")
			}
			finished.Done()
		}()
	}
	started.Wait()
	for runtime.NumGoroutine() < idleN+1 {
		runtime.Gosched()
	}
	time.Sleep(10 * time.Millisecond) // let the last ones reach the channel
	peak := statusKB("VmHWM")
	close(gate)
	finished.Wait()
	return (peak - base) * 1024 / idleN
}

func main() {
	workloads := map[string]func(){
		"skynet": runSkynet, "spawn": runSpawn, "pingpong": runPingpong,
		"buffered": runBuffered, "mpmc": runMpmc,
	}
	if len(os.Args) != 2 {
		fmt.Fprintf(os.Stderr, "usage: %s skynet|spawn|pingpong|buffered|mpmc|idle\n", os.Args[0])
		os.Exit(64)
	}
	name := os.Args[1]
	if name == "idle" {
		fmt.Printf("idle %d\n", runIdle())
		return
	}
	run, ok := workloads[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: no such workload\n", name)
		os.Exit(64)
	}
	start := time.Now()
	run()
	fmt.Printf("%s %.1f\n", name, float64(time.Since(start).Microseconds())/1000)
}
