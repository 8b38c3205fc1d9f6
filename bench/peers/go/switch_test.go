// Go's side of bench/switch_bench.cpp, for bench/compare/micro.py: ns per switch, where b.N is
// the number of switches, counted as switch_bench.cpp counts them.
//
//	go test -run XXX -bench Switch .
package main

import (
	"runtime"
	"sync"
	"testing"
)

// BenchmarkGoschedSwitch is BM_YieldSwitch: two goroutines call runtime.Gosched in turn with
// GOMAXPROCS=1; one Gosched is one switch.
func BenchmarkGoschedSwitch(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	yields := (b.N + 1) / 2 // each goroutine's
	var wg sync.WaitGroup
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func() {
			for i := 0; i < yields; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
}

// chanSwitch is BM_ChanSwitch: two goroutines ping-pong over two unbuffered channels with
// GOMAXPROCS=procs; a round trip is two switches.
func chanSwitch(b *testing.B, procs int) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	roundTrips := (b.N + 1) / 2
	ping, pong := make(chan int64), make(chan int64)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		for i := 0; i < roundTrips; i++ {
			ping <- int64(i)
			<-pong
		}
		wg.Done()
	}()
	go func() {
		for i := 0; i < roundTrips; i++ {
			pong <- <-ping
		}
		wg.Done()
	}()
	wg.Wait()
}

func BenchmarkChanSwitch1(b *testing.B) { chanSwitch(b, 1) }
func BenchmarkChanSwitch2(b *testing.B) { chanSwitch(b, 2) }
