// Micro-benchmarks of goroutines: spawn and join, yield, and the memory a parked goroutine
// costs. The side-by-side comparison with Go and Boost.Fiber is bench/compare/run.py.
#include "peers/peer.hpp"

#include <goro/go.hpp>
#include <goro/sync.hpp>

#include <benchmark/benchmark.h>

namespace {

// start_runtime() makes sure the workers exist before anything is measured.
void start_runtime() {
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&wg] { wg.done(); });
    wg.wait();
}

// BM_ParkedMemory reports the resident memory a parked goroutine costs, from VmRSS before
// and while range(0) goroutines are parked on a WaitGroup. It is registered first: stacks that
// earlier benchmarks leave in goro's pools would be reused here and hide their cost.
void BM_ParkedMemory(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    start_runtime();
    double bytes = 0;
    for (auto _ : state) {
        goro::WaitGroup started, gate, finished;
        started.add(n);
        gate.add(1);
        finished.add(n);
        long base = peer::status_kb("VmRSS");
        for (int i = 0; i < n; ++i) {
            goro::go([&] {
                started.done();
                gate.wait();
                finished.done();
            });
        }
        started.wait();
        bytes = static_cast<double>(peer::status_kb("VmRSS") - base) * 1024 / n;
        gate.done();
        finished.wait();
    }
    state.counters["bytes_per_goroutine"] = bytes;
}
BENCHMARK(BM_ParkedMemory)
    ->Arg(100'000)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// BM_SpawnFromThread starts range(0) goroutines from a plain thread and waits for them all.
void BM_SpawnFromThread(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    start_runtime();
    for (auto _ : state) {
        goro::WaitGroup wg;
        wg.add(n);
        for (int i = 0; i < n; ++i) goro::go([&wg] { wg.done(); });
        wg.wait();
    }
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_SpawnFromThread)
    ->Arg(1'000)
    ->Arg(100'000)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// BM_SpawnFromGoroutine is the same, spawned by a goroutine, whose children go to its own
// worker's run queue rather than the global one.
void BM_SpawnFromGoroutine(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    start_runtime();
    for (auto _ : state) {
        goro::WaitGroup parent;
        parent.add(1);
        goro::go([&parent, n] {
            goro::WaitGroup wg;
            wg.add(n);
            for (int i = 0; i < n; ++i) goro::go([&wg] { wg.done(); });
            wg.wait();
            parent.done();
        });
        parent.wait();
    }
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_SpawnFromGoroutine)
    ->Arg(1'000)
    ->Arg(100'000)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// BM_YieldPingPong runs two goroutines that yield to each other 10,000 times each, on
// range(0) workers: on one they alternate, on more they also race for the global queue.
void BM_YieldPingPong(benchmark::State& state) {
    constexpr int yields = 10'000;
    start_runtime();
    const int previous = goro::set_gomaxprocs(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        goro::WaitGroup wg;
        wg.add(2);
        for (int g = 0; g < 2; ++g) {
            goro::go([&wg] {
                for (int i = 0; i < yields; ++i) goro::yield();
                wg.done();
            });
        }
        wg.wait();
    }
    goro::set_gomaxprocs(previous);
    state.SetItemsProcessed(state.iterations() * 2 * yields);
}
BENCHMARK(BM_YieldPingPong)
    ->ArgName("procs")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
