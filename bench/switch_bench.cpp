// The context-switch floor: how close a goroutine switch gets to Boost.Context's own jump.
//
// Every benchmark reports ns per switch, where a switch is one context stopping and another
// starting on the same thread; Google Benchmark's iterations are switches, run in one batch.
//
//   BM_FcontextJump     two contexts from make_fcontext, on malloc'd 64 KiB stacks, jump to each
//                       other with jump_fcontext: one jump is one switch. The floor.
//   BM_YieldSwitch      two goroutines call goro::yield() in turn on one worker (GOMAXPROCS=1):
//                       one yield is one switch. A yield goes through the worker's scheduler
//                       stack (two jumps) and the global run queue, as runtime.Gosched does.
//   BM_ChanSwitch       two goroutines ping-pong over two unbuffered channels: a round trip is
//                       two park/ready hand-offs, so two switches. With procs=1 each is a
//                       direct switch from the parking goroutine to the one it readied (one
//                       jump, most of the time); with procs=2 the other worker may take the
//                       readied goroutine, and a "switch" is then a hand-off between threads.
#include <goro/goro.hpp>

#include <boost/context/detail/fcontext.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>

namespace {

namespace ctx = boost::context::detail;

// start_runtime() makes sure the workers exist before anything is measured.
void start_runtime() {
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&wg] { wg.done(); });
    wg.wait();
}

// ---- BM_FcontextJump ----

struct JumpRun {
    ctx::fcontext_t caller = nullptr;  // the benchmark thread's context, to return to
    ctx::fcontext_t other = nullptr;   // the second context
    std::int64_t round_trips = 0;
};

// echo() is the second context: it jumps straight back to whoever jumped to it, forever.
void echo(ctx::transfer_t t) noexcept {
    for (;;) t = ctx::jump_fcontext(t.fctx, nullptr);
}

// pinger() is the first context: round_trips jumps to echo and back, then back to the caller.
void pinger(ctx::transfer_t t) noexcept {
    auto* run = static_cast<JumpRun*>(t.data);
    run->caller = t.fctx;
    ctx::fcontext_t other = run->other;
    for (std::int64_t i = 0; i < run->round_trips; ++i)
        other = ctx::jump_fcontext(other, nullptr).fctx;
    ctx::jump_fcontext(run->caller, nullptr);
    std::abort();  // never resumed
}

void BM_FcontextJump(benchmark::State& state) {
    constexpr std::size_t stack_size = 64 * 1024;
    const auto n = state.max_iterations;
    while (state.KeepRunningBatch(n)) {
        char* stack1 = static_cast<char*>(std::malloc(stack_size));
        char* stack2 = static_cast<char*>(std::malloc(stack_size));
        JumpRun run;
        run.other = ctx::make_fcontext(stack2 + stack_size, stack_size, &echo);
        run.round_trips = (n + 1) / 2;
        ctx::fcontext_t first = ctx::make_fcontext(stack1 + stack_size, stack_size, &pinger);
        ctx::jump_fcontext(first, &run);  // returns when pinger is done; both are left suspended
        std::free(stack1);
        std::free(stack2);
    }
}
BENCHMARK(BM_FcontextJump)->UseRealTime();

// ---- BM_YieldSwitch ----

void BM_YieldSwitch(benchmark::State& state) {
    start_runtime();
    const int previous = goro::set_gomaxprocs(1);
    const auto n = state.max_iterations;
    while (state.KeepRunningBatch(n)) {
        const std::int64_t yields = (n + 1) / 2;  // each goroutine's
        goro::WaitGroup wg;
        wg.add(2);
        for (int g = 0; g < 2; ++g) {
            goro::go([&wg, yields] {
                for (std::int64_t i = 0; i < yields; ++i) goro::yield();
                wg.done();
            });
        }
        wg.wait();
    }
    goro::set_gomaxprocs(previous);
}
BENCHMARK(BM_YieldSwitch)->UseRealTime();

// ---- BM_ChanSwitch ----

void BM_ChanSwitch(benchmark::State& state) {
    start_runtime();
    const int previous = goro::set_gomaxprocs(static_cast<int>(state.range(0)));
    const auto n = state.max_iterations;
    while (state.KeepRunningBatch(n)) {
        const std::int64_t round_trips = (n + 1) / 2;
        goro::Channel<std::int64_t> ping, pong;
        goro::WaitGroup wg;
        wg.add(2);
        goro::go([&] {
            for (std::int64_t i = 0; i < round_trips; ++i) {
                ping.send(i);
                pong.recv();
            }
            wg.done();
        });
        goro::go([&] {
            for (std::int64_t i = 0; i < round_trips; ++i) pong.send(*ping.recv());
            wg.done();
        });
        wg.wait();
    }
    goro::set_gomaxprocs(previous);
}
BENCHMARK(BM_ChanSwitch)->ArgName("procs")->Arg(1)->Arg(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
