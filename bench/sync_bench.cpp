// Micro-benchmarks of goro's sync primitives: Mutex with and without contention, WaitGroup.
#include <goro/go.hpp>
#include <goro/sync.hpp>

#include <benchmark/benchmark.h>

namespace {

// BM_MutexUncontended locks and unlocks a Mutex nobody else wants: the fast path.
void BM_MutexUncontended(benchmark::State& state) {
    goro::Mutex mu;
    for (auto _ : state) {
        mu.lock();
        mu.unlock();
    }
}
BENCHMARK(BM_MutexUncontended);

// BM_MutexContended has 4 goroutines take one Mutex 10,000 times each around an increment.
void BM_MutexContended(benchmark::State& state) {
    constexpr int goroutines = 4, locks = 10'000;
    for (auto _ : state) {
        goro::Mutex mu;
        goro::WaitGroup wg;
        long counter = 0;
        wg.add(goroutines);
        for (int g = 0; g < goroutines; ++g) {
            goro::go([&] {
                for (int i = 0; i < locks; ++i) {
                    mu.lock();
                    ++counter;
                    mu.unlock();
                }
                wg.done();
            });
        }
        wg.wait();
        if (counter != goroutines * locks) state.SkipWithError("lost an increment");
    }
    state.SetItemsProcessed(state.iterations() * goroutines * locks);
}
BENCHMARK(BM_MutexContended)->UseRealTime()->Unit(benchmark::kMicrosecond);

// BM_WaitGroupAddDone adds one and marks it done, with nobody waiting.
void BM_WaitGroupAddDone(benchmark::State& state) {
    goro::WaitGroup wg;
    for (auto _ : state) {
        wg.add(1);
        wg.done();
    }
}
BENCHMARK(BM_WaitGroupAddDone);

}  // namespace

BENCHMARK_MAIN();
