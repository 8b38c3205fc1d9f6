// Ports of the channel and select benchmarks of Go's runtime/chan_test.go, so that goro's
// numbers read like `go test -bench 'Chan|Select' -benchmem runtime` output.
//
// Go's numbers are ns per b.N iteration, where one iteration is whatever the Go loop body does
// (100 sends and 100 receives in ChanUncontended, one select in ChanNonblocking, one send to
// each of 1000 goroutines in ChanPopular). Each port keeps the body and reports the same:
// Google Benchmark's iterations are b.N, run in one batch (KeepRunningBatch) on goroutines,
// and the time per iteration is the wall time of the batch over b.N.
//
// b.RunParallel becomes run_parallel(): GOMAXPROCS goroutines share the b.N iterations, taken
// from one counter in grains of ~100 µs of work, as testing.PB hands them out. Everything runs
// on goroutines, the benchmark thread only waits: the body of a Go benchmark runs on a
// goroutine too.
//
// allocs_per_op and bytes_per_op are Go's -benchmem columns: operator new is replaced (by
// tests/alloc_counter.hpp) to count, and the count over the whole batch (set-up included, as in Go) is divided by b.N.
// Steady-state sends, receives and selects must show 0; ChanCreation allocates its channel.
#include <goro/goro.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "../tests/alloc_counter.hpp"  // allocs_per_op and bytes_per_op

using goro_test::AllocTotals;
using goro_test::alloc_totals;

namespace {

using Clock = std::chrono::steady_clock;

// on_goroutine() runs f on a goroutine and waits for it, as the testing package runs a
// benchmark function on a goroutine of its own.
template <class F>
void on_goroutine(F&& f) {
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        f();
        wg.done();
    });
    wg.wait();
}

// measure() runs one benchmark run: fn(b_n) once on a goroutine, timed as b.N iterations,
// with Go's -benchmem counters.
template <class F>
void measure(benchmark::State& state, F fn) {
    const auto n = state.max_iterations;
    const AllocTotals before = alloc_totals();
    while (state.KeepRunningBatch(n)) on_goroutine([&] { fn(static_cast<std::int64_t>(n)); });
    const AllocTotals after = alloc_totals();
    using benchmark::Counter;
    state.counters["allocs_per_op"] =
        Counter(static_cast<double>(after.count - before.count), Counter::kAvgIterations);
    state.counters["bytes_per_op"] =
        Counter(static_cast<double>(after.bytes - before.bytes), Counter::kAvgIterations);
}

// PB is testing.PB: next() says whether the calling goroutine should run one more iteration.
class PB {
public:
    PB(std::atomic<std::uint64_t>& global, std::uint64_t grain, std::uint64_t bn) noexcept
        : global_(global), grain_(grain), bn_(bn) {}

    // next() mirrors PB.Next in testing/benchmark.go.
    bool next() noexcept {
        if (cache_ == 0) {
            std::uint64_t n = global_.fetch_add(grain_, std::memory_order_relaxed) + grain_;
            if (n <= bn_) cache_ = grain_;
            else if (n < bn_ + grain_) cache_ = bn_ + grain_ - n;
            else return false;
        }
        --cache_;
        return true;
    }

private:
    std::atomic<std::uint64_t>& global_;
    std::uint64_t grain_, bn_, cache_ = 0;
};

// run_parallel() is b.RunParallel: body(pb) on GOMAXPROCS goroutines, which share bn
// iterations. Call it on a goroutine. As Go does, the grain is sized from the previous run
// of the same benchmark to ~100 µs of iterations, between 1 and 10,000; each benchmark
// passes its own lambda, so each instantiation's statics are that benchmark's previous run.
template <class Body>
void run_parallel(std::int64_t bn, Body body) {
    static std::int64_t previous_n = 0;
    static std::int64_t previous_ns = 0;
    std::uint64_t grain = 1;
    if (previous_n > 0 && previous_ns > 0)
        grain = static_cast<std::uint64_t>(100'000.0 * static_cast<double>(previous_n) /
                                           static_cast<double>(previous_ns));
    grain = std::clamp<std::uint64_t>(grain, 1, 10'000);

    const auto start = Clock::now();
    const int procs = goro::gomaxprocs();
    std::atomic<std::uint64_t> global{0};
    goro::WaitGroup wg;
    wg.add(procs);
    for (int p = 0; p < procs; ++p) {
        goro::go([&] {
            PB pb(global, grain, static_cast<std::uint64_t>(bn));
            body(pb);
            wg.done();
        });
    }
    wg.wait();
    previous_n = bn;
    previous_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start)
                      .count();
}

// Every benchmark reports wall time: the benchmark thread only waits.
#define CHAN_BENCHMARK(fn) BENCHMARK(fn)->UseRealTime()

// ---- the ports, in chan_test.go's order ----

void BM_ChanNonblocking(benchmark::State& state) {
    measure(state, [](std::int64_t bn) {
        goro::Channel<int> myc;
        run_parallel(bn, [&](PB& pb) {
            while (pb.next()) goro::select(goro::recv(myc), goro::default_case());
        });
    });
}
CHAN_BENCHMARK(BM_ChanNonblocking);

void BM_SelectUncontended(benchmark::State& state) {
    measure(state, [](std::int64_t bn) {
        run_parallel(bn, [](PB& pb) {
            goro::Channel<int> myc1(1), myc2(1);
            myc1.send(0);
            while (pb.next()) {
                goro::select(goro::recv(myc1, [&] { myc2.send(0); }),
                             goro::recv(myc2, [&] { myc1.send(0); }));
            }
        });
    });
}
CHAN_BENCHMARK(BM_SelectUncontended);

void BM_SelectSyncContended(benchmark::State& state) {
    goro::WaitGroup senders;  // Go leaves its senders to exit; they are waited for untimed here
    measure(state, [&](std::int64_t bn) {
        goro::Channel<int> myc1, myc2, myc3, done;
        run_parallel(bn, [&](PB& pb) {
            senders.add(1);
            goro::go([=, &senders] {
                for (;;) {
                    if (goro::select(goro::send(myc1, 0), goro::send(myc2, 0),
                                     goro::send(myc3, 0), goro::recv(done)) == 3)
                        break;
                }
                senders.done();
            });
            while (pb.next()) goro::select(goro::recv(myc1), goro::recv(myc2), goro::recv(myc3));
        });
        done.close();
    });
    senders.wait();
}
CHAN_BENCHMARK(BM_SelectSyncContended);

void BM_SelectAsyncContended(benchmark::State& state) {
    measure(state, [](std::int64_t bn) {
        const auto procs = static_cast<std::size_t>(goro::gomaxprocs());
        goro::Channel<int> myc1(procs), myc2(procs);
        run_parallel(bn, [&](PB& pb) {
            myc1.send(0);
            while (pb.next()) {
                goro::select(goro::recv(myc1, [&] { myc2.send(0); }),
                             goro::recv(myc2, [&] { myc1.send(0); }));
            }
        });
    });
}
CHAN_BENCHMARK(BM_SelectAsyncContended);

void BM_SelectNonblock(benchmark::State& state) {
    measure(state, [](std::int64_t bn) {
        goro::Channel<int> myc1, myc2, myc3(1), myc4(1);
        run_parallel(bn, [&](PB& pb) {
            while (pb.next()) {
                goro::select(goro::recv(myc1), goro::default_case());
                goro::select(goro::send(myc2, 0), goro::default_case());
                goro::select(goro::recv(myc3), goro::default_case());
                goro::select(goro::send(myc4, 0), goro::default_case());
            }
        });
    });
}
CHAN_BENCHMARK(BM_SelectNonblock);

void BM_ChanUncontended(benchmark::State& state) {
    constexpr int C = 100;
    measure(state, [](std::int64_t bn) {
        run_parallel(bn, [](PB& pb) {
            goro::Channel<int> myc(C);
            while (pb.next()) {
                for (int i = 0; i < C; ++i) myc.send(0);
                for (int i = 0; i < C; ++i) myc.recv();
            }
        });
    });
}
CHAN_BENCHMARK(BM_ChanUncontended);

void BM_ChanContended(benchmark::State& state) {
    constexpr int C = 100;
    measure(state, [](std::int64_t bn) {
        goro::Channel<int> myc(static_cast<std::size_t>(C * goro::gomaxprocs()));
        run_parallel(bn, [&](PB& pb) {
            while (pb.next()) {
                for (int i = 0; i < C; ++i) myc.send(0);
                for (int i = 0; i < C; ++i) myc.recv();
            }
        });
    });
}
CHAN_BENCHMARK(BM_ChanContended);

// BM_ChanSync is benchmarkChanSync(b, 0): two goroutines meet on one unbuffered channel in
// b.N/1000/2*2 blocks of 1000 exchanges (a receive and a send each), claimed in turn.
void BM_ChanSync(benchmark::State& state) {
    measure(state, [](std::int64_t bn) {
        constexpr int calls_per_sched = 1000;
        constexpr int procs = 2;
        std::atomic<std::int32_t> n{static_cast<std::int32_t>(bn / calls_per_sched / procs * procs)};
        goro::Channel<bool> c(procs);
        goro::Channel<int> myc;
        for (int p = 0; p < procs; ++p) {
            goro::go([&] {
                for (;;) {
                    std::int32_t i = n.fetch_sub(1) - 1;
                    if (i < 0) break;
                    for (int g = 0; g < calls_per_sched; ++g) {
                        if (i % 2 == 0) {
                            myc.recv();
                            myc.send(0);
                        } else {
                            myc.send(0);
                            myc.recv();
                        }
                    }
                }
                c.send(true);
            });
        }
        for (int p = 0; p < procs; ++p) c.recv();
    });
}
CHAN_BENCHMARK(BM_ChanSync);

// chan_prod_cons() is benchmarkChanProdCons(b, chanSize, 0): GOMAXPROCS producers and as many
// consumers, b.N values in all (in blocks of 1000) through one channel, 0 ending each consumer.
void chan_prod_cons(benchmark::State& state, std::size_t chan_size) {
    measure(state, [chan_size](std::int64_t bn) {
        constexpr int calls_per_sched = 1000;
        const int procs = goro::gomaxprocs();
        std::atomic<std::int32_t> n{static_cast<std::int32_t>(bn / calls_per_sched)};
        goro::Channel<bool> c(static_cast<std::size_t>(2 * procs));
        goro::Channel<int> myc(chan_size);
        for (int p = 0; p < procs; ++p) {
            goro::go([&] {
                while (n.fetch_sub(1) - 1 >= 0) {
                    for (int g = 0; g < calls_per_sched; ++g) myc.send(1);
                }
                myc.send(0);
                c.send(false);
            });
            goro::go([&] {
                for (;;) {
                    if (*myc.recv() == 0) break;
                }
                c.send(false);
            });
        }
        for (int p = 0; p < procs; ++p) {
            c.recv();
            c.recv();
        }
    });
}

void BM_ChanProdCons0(benchmark::State& state) { chan_prod_cons(state, 0); }
CHAN_BENCHMARK(BM_ChanProdCons0);
void BM_ChanProdCons10(benchmark::State& state) { chan_prod_cons(state, 10); }
CHAN_BENCHMARK(BM_ChanProdCons10);
void BM_ChanProdCons100(benchmark::State& state) { chan_prod_cons(state, 100); }
CHAN_BENCHMARK(BM_ChanProdCons100);

// BM_ChanCreation allocates: Go's make(chan int, 1) is one allocation, goro's Channel one too.
void BM_ChanCreation(benchmark::State& state) {
    measure(state, [](std::int64_t bn) {
        run_parallel(bn, [](PB& pb) {
            while (pb.next()) {
                goro::Channel<int> myc(1);
                myc.send(0);
                benchmark::DoNotOptimize(myc.recv());
            }
        });
    });
}
CHAN_BENCHMARK(BM_ChanCreation);

void BM_ChanSem(benchmark::State& state) {
    struct Empty {};
    measure(state, [](std::int64_t bn) {
        goro::Channel<Empty> myc(static_cast<std::size_t>(goro::gomaxprocs()));
        run_parallel(bn, [&](PB& pb) {
            while (pb.next()) {
                myc.send(Empty{});
                myc.recv();
            }
        });
    });
}
CHAN_BENCHMARK(BM_ChanSem);

// BM_ChanPopular: 1000 goroutines each select on a shared channel that is never ready and a
// channel of their own; one iteration sends once to each of the 1000.
void BM_ChanPopular(benchmark::State& state) {
    constexpr int n = 1000;
    measure(state, [](std::int64_t bn) {
        goro::Channel<bool> c;
        std::vector<goro::Channel<bool>> a;
        goro::WaitGroup wg;
        wg.add(n);
        for (int j = 0; j < n; ++j) {
            goro::Channel<bool> d;
            a.push_back(d);
            goro::go([c, d, bn, &wg] {
                for (std::int64_t i = 0; i < bn; ++i) goro::select(goro::recv(c), goro::recv(d));
                wg.done();
            });
        }
        for (std::int64_t i = 0; i < bn; ++i) {
            for (const auto& d : a) d.send(true);
        }
        wg.wait();
    });
}
CHAN_BENCHMARK(BM_ChanPopular);

}  // namespace

BENCHMARK_MAIN();
