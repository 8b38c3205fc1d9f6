// tests/go_test.cpp: goroutines (goro/go.hpp): go, yield, gomaxprocs, num_goroutine,
// in_goroutine, blocking.
//
// Catch2's assertion macros are not thread-safe, so goroutines only record what they see (in
// atomics, or in memory ordered by a WaitGroup) and the test thread asserts on it afterwards.
#include "run_util.hpp"
#include "test_util.hpp"

#include <goro/channel.hpp>
#include <goro/detail/sched.hpp>
#include <goro/go.hpp>
#include <goro/sync.hpp>
#include <goro/time.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace std::chrono_literals;
using goro_test::poll_until;
using goro_test::scaled;

namespace {

// can_go says whether go(args...) is well-formed, to check its constraint at compile time.
template <class... A>
concept can_go = requires(A&&... a) { goro::go(std::forward<A>(a)...); };

// Counted counts its copies and moves, and remembers whether it is a moved-from shell.
struct Counted {
    static inline std::atomic<int> copies{0}, moves{0};
    static void reset() { copies = 0, moves = 0; }
    int value = 0;
    explicit Counted(int v) : value(v) {}
    Counted(const Counted& o) : value(o.value) { ++copies; }
    Counted(Counted&& o) noexcept : value(o.value) {
        o.value = -1;
        ++moves;
    }
};

// threads_running_goroutines() runs a batch of goroutines that yield a few times and returns
// how many distinct threads ran them.
std::size_t threads_running_goroutines() {
    std::mutex mu;
    std::set<std::thread::id> ids;  // guarded by mu
    goro::WaitGroup wg;
    wg.add(50);
    for (int i = 0; i < 50; ++i)
        goro::go([&] {
            for (int k = 0; k < 3; ++k) {
                {
                    std::lock_guard<std::mutex> lk(mu);
                    ids.insert(std::this_thread::get_id());
                }
                goro::yield();
            }
            wg.done();
        });
    wg.wait();
    return ids.size();
}

// settle_on_one_worker() waits until goroutines run on a single thread after GOMAXPROCS was
// set to 1: a worker beyond it retires only at its next scheduling round, and may run a
// goroutine or two before.
bool settle_on_one_worker() {
    return poll_until([] { return threads_running_goroutines() == 1; });
}

// stop_from_a_goroutine() sets stop from a goroutine that main starts, and waits for it.
void stop_from_a_goroutine(std::atomic<bool>& stop) {
    goro::WaitGroup done;
    done.add(1);
    goro::go([&] {
        stop = true;
        done.done();
    });
    done.wait();
}

}  // namespace

TEST_CASE("go: a million goroutines joined by a WaitGroup from plain main", "[go]") {
    // Not scaled in normal builds: spawning a million is the claim under test.
    const int n = goro_test::sanitized() ? scaled(1'000'000) : 1'000'000;
    std::atomic<int> ran{0};
    goro::WaitGroup wg;
    wg.add(n);
    auto start = goro::Clock::now();
    for (int i = 0; i < n; ++i)
        goro::go([&] {
            ran.fetch_add(1, std::memory_order_relaxed);
            wg.done();
        });
    wg.wait();
    CHECK(ran.load() == n);
    CHECK(goro_test::seconds_since(start) < 20.0);
}

TEST_CASE("go: goroutines spawning goroutines", "[go]") {
    const int fan = 100, per = scaled(1000, 10);
    std::atomic<int> ran{0};
    goro::WaitGroup wg;
    wg.add(fan);
    for (int i = 0; i < fan; ++i)
        goro::go([&] {
            wg.add(per);
            for (int j = 0; j < per; ++j)
                goro::go([&] {
                    ran.fetch_add(1, std::memory_order_relaxed);
                    wg.done();
                });
            wg.done();
        });
    wg.wait();
    CHECK(ran.load() == fan * per);
}

TEST_CASE("go: decay-copies f and its arguments, like std::thread", "[go]") {
    static_assert(!can_go<void (*)(int&), int&>, "an lvalue argument must not bind to T&");
    static_assert(can_go<void (*)(int&), std::reference_wrapper<int>>);
    static_assert(can_go<void (*)(const char*), const char (&)[6]>);
    static_assert(!can_go<void (*)(int), std::string>);

    goro::WaitGroup wg;

    SECTION("an lvalue argument is copied exactly once, at the call") {
        Counted::reset();
        Counted c(7);
        int seen = 0;
        wg.add(1);
        goro::go([&](Counted x) { seen = x.value; wg.done(); }, c);
        c.value = 99;  // the goroutine already has its own copy
        wg.wait();
        CHECK(seen == 7);
        CHECK(Counted::copies.load() == 1);
    }
    SECTION("an rvalue argument is moved, never copied") {
        Counted::reset();
        int seen = 0;
        wg.add(1);
        goro::go([&](Counted x) { seen = x.value; wg.done(); }, Counted(5));
        wg.wait();
        CHECK(seen == 5);
        CHECK(Counted::copies.load() == 0);
        CHECK(Counted::moves.load() >= 1);
    }
    SECTION("a string argument is a copy the caller may change") {
        std::string s = "hello";
        std::string seen;
        wg.add(1);
        goro::go([&](const std::string& v) { seen = v; wg.done(); }, s);
        s = "changed";
        wg.wait();
        CHECK(seen == "hello");
    }
    SECTION("a string literal decays to const char*") {
        std::string seen;
        wg.add(1);
        goro::go([&](const char* p) { seen = p; wg.done(); }, "hello");
        wg.wait();
        CHECK(seen == "hello");
    }
    SECTION("std::ref passes a reference") {
        int x = 0;
        wg.add(1);
        goro::go([&wg](int& r) { r = 42; wg.done(); }, std::ref(x));
        wg.wait();
        CHECK(x == 42);
    }
    SECTION("move-only arguments and functions work") {
        auto p = std::make_unique<int>(11);
        int seen = 0;
        wg.add(1);
        goro::go([&](std::unique_ptr<int> q) { seen = *q; wg.done(); }, std::move(p));
        wg.wait();
        CHECK(seen == 11);
        CHECK(p == nullptr);

        auto q = std::make_unique<int>(12);
        wg.add(1);
        goro::go([&, q = std::move(q)]() mutable {
            seen = *q;
            q.reset();
            wg.done();
        });
        wg.wait();
        CHECK(seen == 12);
    }
    SECTION("an lvalue function object is copied: the original's state is untouched") {
        struct Fn {
            int calls = 0;
            int* out = nullptr;
            goro::WaitGroup* wg = nullptr;
            void operator()() {
                *out = ++calls;
                wg->done();
            }
        };
        int out = 0;
        Fn f{0, &out, &wg};
        wg.add(1);
        goro::go(f);
        wg.wait();
        CHECK(out == 1);
        CHECK(f.calls == 0);
    }
    SECTION("f and args are destroyed on the goroutine when it finishes") {
        // The live copy's destructor reports where it ran; moved-from shells stay silent.
        struct Probe {
            std::atomic<int>* in_go;
            goro::WaitGroup* wg;
            bool live = true;
            Probe(std::atomic<int>* i, goro::WaitGroup* w) : in_go(i), wg(w) {}
            Probe(const Probe& o) = default;
            Probe(Probe&& o) noexcept : in_go(o.in_go), wg(o.wg) { o.live = false; }
            ~Probe() {
                if (!live) return;
                if (goro::in_goroutine()) in_go->fetch_add(1);
                wg->done();
            }
        };
        std::atomic<int> in_go{0};
        wg.add(2);  // one for the argument, one for the captured copy
        goro::go([p = Probe(&in_go, &wg)](Probe) {}, Probe(&in_go, &wg));
        wg.wait();
        CHECK(in_go.load() == 2);
    }
}

TEST_CASE("go: in_goroutine tells goroutines from plain threads", "[go]") {
    CHECK_FALSE(goro::in_goroutine());
    std::atomic<int> in_go{-1}, in_blocking{-1}, in_thread{-1};
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        in_go = goro::in_goroutine();
        in_blocking = goro::blocking([] { return goro::in_goroutine(); });
        wg.done();
    });
    wg.wait();
    std::thread([&] { in_thread = goro::in_goroutine(); }).join();
    CHECK(in_go.load() == 1);
    CHECK(in_blocking.load() == 0);  // blocking() runs f on a thread outside the workers
    CHECK(in_thread.load() == 0);
    CHECK_FALSE(goro::in_goroutine());
}

TEST_CASE("go: num_goroutine counts running and parked goroutines", "[go]") {
    // Earlier tests' goroutines may still be switching out for the last time: let them go.
    REQUIRE(poll_until([] { return goro::num_goroutine() == 0; }));

    std::atomic<std::size_t> seen_inside{0};
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        seen_inside = goro::num_goroutine();
        wg.done();
    });
    wg.wait();
    CHECK(seen_inside.load() >= 1);

    const int n = 1000;
    goro::WaitGroup started, gate, finished;
    gate.add(1);
    started.add(n);
    finished.add(n);
    for (int i = 0; i < n; ++i)
        goro::go([&] {
            started.done();
            gate.wait();
            finished.done();
        });
    started.wait();
    CHECK(goro::num_goroutine() >= static_cast<std::size_t>(n));
    gate.done();
    finished.wait();
    CHECK(poll_until([] { return goro::num_goroutine() == 0; }));
}

TEST_CASE("go: yield lets other goroutines run", "[go][yield]") {
    SECTION("a goroutine spinning on yield lets the one it waits for run") {
        // With one worker and no preemption, the flag is set only if yield() switches.
        goro_test::GomaxprocsGuard procs(1);
        std::atomic<bool> flag{false}, saw{false};
        goro::WaitGroup wg;
        wg.add(2);
        goro::go([&] {
            for (int i = 0; i < 1'000'000 && !flag.load(); ++i) goro::yield();
            saw = flag.load();
            wg.done();
        });
        goro::go([&] {
            flag = true;
            wg.done();
        });
        wg.wait();
        CHECK(saw.load());
    }
    SECTION("on one worker, two yielding goroutines interleave") {
        goro_test::GomaxprocsGuard procs(1);
        REQUIRE(settle_on_one_worker());
        constexpr int rounds = 100;
        std::vector<int> log(2 * rounds, -1);
        std::atomic<int> pos{0};
        std::atomic<int> arrived{0};
        goro::WaitGroup wg;
        wg.add(2);
        for (int id = 0; id < 2; ++id)
            goro::go([&, id] {
                // Start logging only once both run: the second may be made runnable late.
                arrived.fetch_add(1);
                for (int i = 0; i < 1'000'000 && arrived.load() < 2; ++i) goro::yield();
                for (int i = 0; i < rounds; ++i) {
                    log[pos.fetch_add(1)] = id;
                    goro::yield();
                }
                wg.done();
            });
        wg.wait();
        int switches = 0;
        for (std::size_t i = 1; i < log.size(); ++i) switches += log[i] != log[i - 1];
        // Without yield, one goroutine would run all its rounds first: a single switch.
        // Deterministic scheduling (GORO_SCHED_SEED) picks the next at random, not in turn:
        // a switch at about every other yield.
        if (goro::sched_seed() == 0) CHECK(switches >= rounds);
        else CHECK(switches >= rounds / 4);
    }
    SECTION("ping-pong through yield at any GOMAXPROCS") {
        const int rounds = scaled(10'000, 100);
        std::atomic<int> turn{0};
        std::atomic<bool> stuck{false};
        goro::WaitGroup wg;
        wg.add(2);
        for (int id = 0; id < 2; ++id)
            goro::go([&, id] {
                for (int i = 0; i < rounds; ++i) {
                    long spins = 0;
                    while (turn.load() != id) {
                        goro::yield();
                        if (++spins > 10'000'000) {
                            stuck = true;
                            turn = 1 - id;
                            break;
                        }
                    }
                    turn = 1 - id;
                }
                wg.done();
            });
        wg.wait();
        CHECK_FALSE(stuck.load());
    }
    SECTION("yield on a plain thread returns") {
        goro::yield();
        SUCCEED();
    }
}

TEST_CASE("go: blocking returns values, void and references, and propagates exceptions",
          "[go][blocking]") {
    goro::WaitGroup wg;
    std::atomic<bool> ok_value{false}, ok_string{false}, ok_move_only{false}, ok_void{false},
        ok_ref{false}, ok_throw{false};
    int target = 0;
    wg.add(1);
    goro::go([&] {
        ok_value = goro::blocking([] { return 42; }) == 42;
        ok_string = goro::blocking([] { return std::string(1000, 'x'); }) == std::string(1000, 'x');
        ok_move_only = *goro::blocking([] { return std::make_unique<int>(9); }) == 9;
        bool ran = false;
        goro::blocking([&] { ran = true; });
        ok_void = ran;
        int& r = goro::blocking([&]() -> int& { return target; });
        r = 5;
        ok_ref = &r == &target;
        try {
            goro::blocking([]() -> int { throw std::runtime_error("from blocking"); });
        } catch (const std::runtime_error& e) {
            ok_throw = std::string(e.what()) == "from blocking";
        }
        wg.done();
    });
    wg.wait();
    CHECK(ok_value.load());
    CHECK(ok_string.load());
    CHECK(ok_move_only.load());
    CHECK(ok_void.load());
    CHECK(ok_ref.load());
    CHECK(target == 5);
    CHECK(ok_throw.load());

    // On a plain thread, blocking() calls f in place.
    auto id = goro::blocking([] { return std::this_thread::get_id(); });
    CHECK(id == std::this_thread::get_id());
    CHECK_THROWS_AS(goro::blocking([]() -> int { throw std::out_of_range("x"); }),
                    std::out_of_range);
}

TEST_CASE("go: other goroutines run while a blocking call blocks its thread", "[go][blocking]") {
    SECTION("a goroutine started later runs while the first is inside blocking()") {
        // The blocking call waits (boundedly) for the other goroutine: it can only see it run
        // if the worker was freed. Meaningful at GOMAXPROCS=1, valid at any.
        std::atomic<bool> other_ran{false}, saw_other{false};
        goro::WaitGroup wg;
        wg.add(2);
        goro::go([&] {
            saw_other = goro::blocking([&] {
                auto deadline = std::chrono::steady_clock::now() + 10s;
                while (!other_ran.load() && std::chrono::steady_clock::now() < deadline)
                    std::this_thread::sleep_for(1ms);
                return other_ran.load();
            });
            wg.done();
        });
        goro::go([&] {
            other_ran = true;
            wg.done();
        });
        wg.wait();
        CHECK(saw_other.load());
    }
    SECTION("many blocking calls are in flight at once") {
        // Each call waits until all of them have started: only if each got its own thread.
        // The wait shares one deadline, so a pool that serialises them fails in bounded time.
        const int n = 32;
        std::atomic<int> inflight{0}, saw_all{0};
        auto deadline = std::chrono::steady_clock::now() + 10s;
        goro::WaitGroup wg;
        wg.add(n);
        for (int i = 0; i < n; ++i)
            goro::go([&] {
                bool all = goro::blocking([&] {
                    inflight.fetch_add(1);
                    while (inflight.load() < n && std::chrono::steady_clock::now() < deadline)
                        std::this_thread::sleep_for(1ms);
                    return inflight.load() == n;
                });
                if (all) saw_all.fetch_add(1);
                wg.done();
            });
        wg.wait();
        CHECK(saw_all.load() == n);
    }
    SECTION("a burst of blocking calls after the pool has idle threads does not serialise") {
        // Serially these take 100 * 100ms = 10 s.
        const int n = 100;
        goro::WaitGroup wg;
        wg.add(n);
        auto start = goro::Clock::now();
        for (int i = 0; i < n; ++i)
            goro::go([&] {
                goro::blocking([] { std::this_thread::sleep_for(100ms); });
                wg.done();
            });
        wg.wait();
        CHECK(goro_test::seconds_since(start) < 5.0);
    }
}

// errno is read and set through calls the compiler cannot inline: glibc declares
// __errno_location() const, so within one function the compiler may keep errno's address across
// blocking(), and a goroutine that resumed on another worker would read the old thread's errno
// (see blocking()'s comment).
namespace {
// errno is the worker thread's, shared by its goroutines: hidden from the race detector.
[[gnu::noinline]] int errno_now() {
    goro::detail::RuntimeSection rs;
    return errno;
}
[[gnu::noinline]] void errno_set(int e) {
    goro::detail::RuntimeSection rs;
    errno = e;
}
}  // namespace

TEST_CASE("go: blocking carries errno back from the thread that ran f", "[go][blocking]") {
    SECTION("a failed system call") {
        std::atomic<ssize_t> r{0};
        std::atomic<int> seen{0};
        goro_test::run_in_goroutine([&] {
            errno_set(0);
            r = goro::blocking([] {
                char c;
                return ::read(-1, &c, 1);
            });
            seen = errno_now();
        });
        CHECK(r.load() == -1);
        CHECK(seen.load() == EBADF);
    }
    SECTION("errno as f left it, on whichever worker the goroutine resumes") {
        // Many goroutines at once, so that at GOMAXPROCS > 1 they resume on other workers than
        // they parked on, and the workers' own system calls (futex) set errno in between.
        const int n = 16, rounds = scaled(200, 20);
        std::atomic<int> wrong{0}, checked{0};
        goro::WaitGroup wg;
        wg.add(n);
        for (int i = 0; i < n; ++i)
            goro::go([&, i] {
                for (int k = 0; k < rounds; ++k) {
                    int want = 1000 + i * rounds + k;
                    errno_set(0);
                    goro::blocking([want] { errno = want; });
                    if (errno_now() != want) wrong.fetch_add(1);
                    checked.fetch_add(1);
                    if (k % 8 == 0) goro::yield();
                }
                wg.done();
            });
        wg.wait();
        CHECK(checked.load() == n * rounds);
        CHECK(wrong.load() == 0);
    }
    SECTION("f throws") {
        std::atomic<int> seen{0};
        std::atomic<bool> caught{false};
        goro_test::run_in_goroutine([&] {
            errno_set(0);
            try {
                goro::blocking([]() -> int {
                    errno = ENOENT;
                    throw std::runtime_error("after a failed call");
                });
            } catch (const std::runtime_error&) {
                seen = errno_now();
                caught = true;
            }
        });
        CHECK(caught.load());
        CHECK(seen.load() == ENOENT);
    }
    SECTION("on a plain thread f runs in place and errno is simply its own") {
        errno_set(0);
        goro::blocking([] { errno = EINTR; });
        CHECK(errno_now() == EINTR);
    }
}

namespace {
// threads_now() is the process's thread count (/proc/self/status).
int threads_now() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
    return -1;
}

// PoolLimits sets the blocking pool's cap and idle timeout for one test, and restores them.
class PoolLimits {
public:
    PoolLimits(int max_threads, std::chrono::milliseconds idle)
        : pool_(goro::detail::Scheduler::instance().blocking_pool()), old_(pool_.limits()) {
        pool_.set_limits({max_threads, idle});
    }
    PoolLimits(const PoolLimits&) = delete;
    PoolLimits& operator=(const PoolLimits&) = delete;
    ~PoolLimits() { pool_.set_limits(old_); }

private:
    goro::detail::BlockingPool& pool_;
    goro::detail::BlockingPool::Limits old_;
};
}  // namespace

TEST_CASE("go: the blocking pool stays within its cap, queues beyond it, and idle threads exit",
          "[go][blocking]") {
    auto& pool = goro::detail::Scheduler::instance().blocking_pool();
    const int cap = 3;
    PoolLimits limits(cap, 50ms);
    goro_test::run_in_goroutine([] {});  // the workers are started, and counted in base
    // Threads earlier tests left idle expire first; census() reaps them, so that /proc no longer
    // lists them either.
    std::uint64_t gen;
    REQUIRE(poll_until([&] { return pool.census(gen) == 0; }));
    const int base = threads_now();
    REQUIRE(base > 0);

    // Four rounds of calls at the cap: each call waits 100 ms, so all three threads are busy.
    const int n = 4 * cap;
    std::atomic<int> inflight{0}, most{0}, done{0}, most_threads{0};
    std::atomic<bool> sampling{true};
    goro::WaitGroup wg, sampler;
    wg.add(n);
    sampler.add(1);
    goro::go([&] {
        while (sampling.load()) {
            int t = threads_now();
            if (t > most_threads.load()) most_threads = t;
            goro::sleep_for(1ms);
        }
        sampler.done();
    });
    for (int i = 0; i < n; ++i)
        goro::go([&] {
            goro::blocking([&] {
                int now = inflight.fetch_add(1) + 1;
                for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {
                }
                std::this_thread::sleep_for(100ms);
                inflight.fetch_sub(1);
            });
            done.fetch_add(1);
            wg.done();
        });
    wg.wait();
    sampling = false;
    sampler.wait();
    CHECK(done.load() == n);
    CHECK(most.load() == cap);
    CHECK(most_threads.load() <= base + cap);
    CHECK(pool.threads() <= cap);

    // Idle for 50 ms, the threads exit, and /proc stops listing them.
    CHECK(poll_until([&] { return pool.threads() == 0 && threads_now() == base; }));
}

TEST_CASE("go: set_gomaxprocs shrinks and grows while work runs", "[go][gomaxprocs]") {
    const int initial = goro::gomaxprocs();
    REQUIRE(initial >= 1);
    CHECK(goro::set_gomaxprocs(0) == initial);  // n < 1 only queries
    CHECK(goro::gomaxprocs() == initial);

    SECTION("10k goroutines survive a shrink to 1 and a grow to 4") {
        const int n = scaled(10'000, 100);
        std::atomic<int> finished{0};
        goro::WaitGroup wg;
        wg.add(n);
        for (int i = 0; i < n; ++i)
            goro::go([&] {
                for (int k = 0; k < 20; ++k) goro::yield();
                finished.fetch_add(1);
                wg.done();
            });
        int prev1 = goro::set_gomaxprocs(1);
        CHECK(goro::gomaxprocs() == 1);
        goro::sleep_for(5ms);
        int prev2 = goro::set_gomaxprocs(4);
        CHECK(goro::gomaxprocs() == 4);
        goro::sleep_for(5ms);
        int prev3 = goro::set_gomaxprocs(1);
        wg.wait();
        int prev4 = goro::set_gomaxprocs(initial);
        CHECK(prev1 == initial);
        CHECK(prev2 == 1);
        CHECK(prev3 == 4);
        CHECK(prev4 == 1);
        CHECK(finished.load() == n);
        CHECK(goro::gomaxprocs() == initial);
    }
    SECTION("after a grow to 4, four goroutines run at the same time") {
        goro_test::GomaxprocsGuard procs(4);
        CHECK(procs.previous() == initial);
        // Each spins without yielding until all four are in: only four workers can do that.
        std::atomic<int> arrived{0};
        std::atomic<int> all_in{0};
        goro::WaitGroup wg;
        wg.add(4);
        for (int i = 0; i < 4; ++i)
            goro::go([&] {
                arrived.fetch_add(1);
                auto deadline = goro::Clock::now() + 10s;
                while (arrived.load() < 4 && goro::Clock::now() < deadline) {
                }
                if (arrived.load() == 4) all_in.fetch_add(1);
                wg.done();
            });
        wg.wait();
        CHECK(all_in.load() == 4);
    }
    SECTION("after a shrink to 1, goroutines run on a single thread") {
        goro_test::GomaxprocsGuard procs(1);
        CHECK(settle_on_one_worker());
    }
    CHECK(goro::gomaxprocs() == initial);
}

TEST_CASE("go: a shrink of GOMAXPROCS strands no goroutine on the retired worker",
          "[go][gomaxprocs]") {
    // Repro t_retire_strand6. A retiring worker drained its queue through the scheduling
    // policy, which hands back nothing, leaving runnext in place, once a hand-off chain's time
    // slice is over, its ring is empty and other queues hold work; nobody looks at a retired
    // worker's queue, so the chain's next goroutine waited there until GOMAXPROCS grew again.
    // A pair with slow hand-offs (so that slices expire) migrates between the two workers
    // through blocking(); whenever it runs on worker 1, main floods its own queue (and the
    // global one) and shrinks to 1: the pair must keep making progress. (It fails within
    // 30 s in about 2 of 3 runs without the fix; it runs in the GOMAXPROCS=2 registration only.)
    if (goro::gomaxprocs() != 2) return;
    goro_test::GomaxprocsGuard procs(2);
    std::atomic<long> rounds{0};
    std::atomic<int> pair_worker{-1};
    std::atomic<bool> stop{false};
    auto spin = [](std::chrono::microseconds d) {
        auto end = goro::Clock::now() + d;
        while (goro::Clock::now() < end) {
        }
    };
    goro::Channel<int> ping, pong;
    goro::WaitGroup wg;
    wg.add(2);
    goro::go([&, ping, pong] {
        while (!stop) {
            spin(700us);
            ping.send(1);
            pong.recv();
        }
        ping.close();
        wg.done();
    });
    goro::go([&, ping, pong] {
        std::minstd_rand rng(1);
        while (ping.recv()) {
            spin(700us);
            if (rng() % 12 == 0) goro::blocking([] {});
            pair_worker = goro::detail::current_worker()->id;
            rounds.fetch_add(1);
            pong.send(1);
        }
        wg.done();
    });
    std::minstd_rand rng(2);
    const int max_toggles = goro_test::sanitized() ? 20 : 150;
    const auto give_up = goro::Clock::now() + (goro_test::sanitized() ? 10s : 30s);
    int toggles = 0;
    bool stalled = false;
    while (!stalled && toggles < max_toggles && goro::Clock::now() < give_up) {
        if (pair_worker.load() != 1) {
            std::this_thread::sleep_for(200us);
            continue;
        }
        ++toggles;
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 15000));
        for (int i = 0; i < scaled(20000, 2000); ++i) goro::go([] {});
        goro::set_gomaxprocs(1);
        long r0 = rounds.load();
        auto deadline = goro::Clock::now() + 5s;
        while (rounds.load() < r0 + 3 && !stalled) {
            stalled = goro::Clock::now() > deadline;
            std::this_thread::sleep_for(100us);
        }
        goro::set_gomaxprocs(2);
    }
    INFO("toggles: " << toggles);
    CHECK_FALSE(stalled);
    CHECK(toggles > 0);
    stop = true;
    wg.wait();
}

TEST_CASE("go: set_gomaxprocs grows and shrinks repeatedly while workers sleep idle",
          "[go][gomaxprocs]") {
    // New workers start on the idle list; they must not be pushed onto it a second time when
    // they first go idle (that linked the list into a cycle and hung the scheduler).
    goro_test::Watchdog watchdog("set_gomaxprocs grow/shrink cycles");
    goro_test::GomaxprocsGuard procs(1);
    const int rounds = 20, per = scaled(1000, 50);
    std::atomic<int> ran{0};
    {
        goro::WaitGroup wg;  // the runtime runs (and has its first worker) before growing
        wg.add(1);
        goro::go([&] { wg.done(); });
        wg.wait();
    }
    goro::sleep_for(10ms);  // every worker goes idle
    goro::set_gomaxprocs(4);
    goro::sleep_for(10ms);  // the new ones too
    for (int r = 0; r < rounds; ++r) {
        goro::WaitGroup wg;
        wg.add(per);
        for (int i = 0; i < per; ++i)
            goro::go([&] {
                goro::sleep_for(1ms);
                ran.fetch_add(1);
                wg.done();
            });
        wg.wait();
        goro::set_gomaxprocs(r % 2 ? 4 : 1);
        goro::sleep_for(2ms);
    }
    CHECK(ran.load() == rounds * per);
}

TEST_CASE("go: a goroutine parked inside a catch block rethrows its own exception",
          "[go][exceptions]") {
    // The caught-exception stack is per thread in the C++ runtime; a goroutine that parks in a
    // catch block and resumes on another worker must bring its own along, and must not see or
    // disturb that of goroutines that ran on the worker meanwhile.
    const int n = scaled(2000, 50);
    std::atomic<int> rethrown_ok{0}, current_ok{0}, foreign_clean{0}, migrated{0};
    goro::WaitGroup wg, mid;
    wg.add(2 * n);
    mid.add(n);
    for (int i = 0; i < n; ++i) {
        goro::go([&, i] {
            try {
                try {
                    throw std::runtime_error("inner " + std::to_string(i));
                } catch (const std::runtime_error&) {
                    auto before = std::this_thread::get_id();
                    goro::sleep_for(std::chrono::microseconds(100 + i % 500));
                    mid.done();
                    mid.wait();  // parks until every goroutine is inside its catch block
                    goro::yield();
                    if (std::this_thread::get_id() != before) migrated.fetch_add(1);
                    try {
                        std::rethrow_exception(std::current_exception());
                    } catch (const std::runtime_error& e) {
                        if (std::string(e.what()) == "inner " + std::to_string(i))
                            current_ok.fetch_add(1);
                    }
                    throw;
                }
            } catch (const std::runtime_error& e) {
                if (std::string(e.what()) == "inner " + std::to_string(i))
                    rethrown_ok.fetch_add(1);
            }
            wg.done();
        });
        // A bystander with no exception of its own runs while the others are parked in catch.
        goro::go([&] {
            goro::sleep_for(50us);
            if (!std::current_exception() && std::uncaught_exceptions() == 0)
                foreign_clean.fetch_add(1);
            wg.done();
        });
    }
    wg.wait();
    CHECK(rethrown_ok.load() == n);
    CHECK(current_ok.load() == n);
    CHECK(foreign_clean.load() == n);
    INFO("goroutines that resumed on another thread: " << migrated.load());
    CHECK(!std::current_exception());
}

TEST_CASE("go: a destructor that parks during stack unwinding", "[go][exceptions]") {
    // std::uncaught_exceptions() is per goroutine too: it is 1 inside the unwinding
    // destructor before and after it parks, and 0 in goroutines that run meanwhile.
    const int n = scaled(500, 20);
    std::atomic<int> in_dtor_ok{0}, caught_ok{0}, bystander_ok{0};
    goro::WaitGroup wg;
    wg.add(2 * n);
    for (int i = 0; i < n; ++i) {
        goro::go([&] {
            struct Parks {
                std::atomic<int>* ok;
                ~Parks() {
                    int before = std::uncaught_exceptions();
                    goro::sleep_for(200us);
                    goro::yield();
                    if (before == 1 && std::uncaught_exceptions() == 1) ok->fetch_add(1);
                }
            };
            try {
                Parks p{&in_dtor_ok};
                throw std::logic_error("unwinding");
            } catch (const std::logic_error& e) {
                if (std::string(e.what()) == "unwinding") caught_ok.fetch_add(1);
            }
            wg.done();
        });
        goro::go([&] {
            goro::sleep_for(100us);
            if (std::uncaught_exceptions() == 0 && !std::current_exception())
                bystander_ok.fetch_add(1);
            wg.done();
        });
    }
    wg.wait();
    CHECK(in_dtor_ok.load() == n);
    CHECK(caught_ok.load() == n);
    CHECK(bystander_ok.load() == n);
}

TEST_CASE("go: a million parked goroutines", "[go][stress]") {
    const int n = goro_test::sanitized()
                      ? std::min(scaled(1'000'000), goro_test::max_live_goroutines())
                      : 1'000'000;
    goro::WaitGroup started, gate, finished;
    gate.add(1);
    started.add(n);
    finished.add(n);
    std::atomic<int> released{0};
    for (int i = 0; i < n; ++i)
        goro::go([&] {
            started.done();
            gate.wait();
            released.fetch_add(1, std::memory_order_relaxed);
            finished.done();
        });
    started.wait();
    CHECK(goro::num_goroutine() >= static_cast<std::size_t>(n));
    CHECK(released.load() == 0);
    gate.done();
    finished.wait();
    CHECK(released.load() == n);
}

TEST_CASE("go: plain threads that start goroutines exit one after another", "[go][threads]") {
    // A thread keeps a cache of goroutine control blocks and hands what is left to a shared
    // depot when it exits; the next thread must cope with that short batch. Every closure has
    // the same type, so that all the blocks come from one size class.
    auto body = [](goro::WaitGroup* wg) { wg->done(); };
    {
        goro::WaitGroup wg;  // workers free enough blocks to fill the depot with batches
        const int n = 10'000;
        wg.add(n);
        for (int i = 0; i < n; ++i) goro::go(body, &wg);
        wg.wait();
    }
    int threads_done = 0;
    for (int t = 0; t < 8; ++t) {
        std::thread([&, t] {
            goro::WaitGroup wg;
            wg.add(10 + t);
            for (int i = 0; i < 10 + t; ++i) goro::go(body, &wg);
            wg.wait();
        }).join();
        ++threads_done;
    }
    CHECK(threads_done == 8);
}

TEST_CASE("go: goroutines started from several plain threads at once", "[go][threads]") {
    const int threads = 8, per = scaled(20'000, 100);
    std::atomic<long> sum{0};
    goro::WaitGroup wg;
    wg.add(threads * per);
    std::vector<std::thread> ts;
    std::atomic<int> thread_waits_ok{0};
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            goro::WaitGroup mine;  // each thread also waits for its own goroutines
            mine.add(per);
            for (int i = 0; i < per; ++i)
                goro::go(
                    [&](int v) {
                        sum.fetch_add(v, std::memory_order_relaxed);
                        mine.done();
                        wg.done();
                    },
                    t);
            mine.wait();
            thread_waits_ok.fetch_add(1);
        });
    for (auto& t : ts) t.join();
    wg.wait();
    long want = 0;
    for (int t = 0; t < threads; ++t) want += static_cast<long>(t) * per;
    CHECK(sum.load() == want);
    CHECK(thread_waits_ok.load() == threads);
}

// A plain thread queues the goroutines it starts (go, or a channel operation that readies one)
// on a run queue of its own, which the workers steal from; there are a limited number of such
// queues, and a thread that exits hands its queue back with whatever is still in it.

TEST_CASE("go: goroutines a plain thread started still run after it exits", "[go][threads]") {
    // Keep every worker busy in a goroutine that does not yield, so that nothing can take the
    // thread's goroutines from its queue before the thread exits: they must still be found.
    const int procs = goro::gomaxprocs();
    std::atomic<int> busy{0};
    std::atomic<bool> release{false};
    goro::WaitGroup spinners;
    spinners.add(procs);
    for (int i = 0; i < procs; ++i)
        goro::go([&] {
            busy.fetch_add(1);
            while (!release.load()) std::this_thread::yield();
            spinners.done();
        });
    REQUIRE(poll_until([&] { return busy.load() == procs; }));

    const int n = 100;
    std::atomic<int> ran{0};
    goro::WaitGroup wg;
    wg.add(n);
    std::thread([&] {
        for (int i = 0; i < n; ++i)
            goro::go([&] {
                ran.fetch_add(1);
                wg.done();
            });
    }).join();
    CHECK(ran.load() == 0);  // the workers are still busy: nothing ran yet
    release = true;
    wg.wait();
    spinners.wait();
    CHECK(ran.load() == n);
}

TEST_CASE("go: more plain threads starting goroutines at once than there are thread queues",
          "[go][threads]") {
    // 100 threads, alive together until each has started its goroutines: more than the
    // runtime's 64 queues for plain threads, so some use the global queue.
    const int threads = 100, per = scaled(200, 10);
    std::atomic<long> sum{0};
    std::atomic<int> started{0};
    goro::WaitGroup wg;
    wg.add(threads * per);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < per; ++i)
                goro::go(
                    [&](int v) {
                        sum.fetch_add(v, std::memory_order_relaxed);
                        wg.done();
                    },
                    t + 1);
            started.fetch_add(1);
            while (started.load() < threads) std::this_thread::yield();
        });
    for (auto& t : ts) t.join();
    wg.wait();
    CHECK(sum.load() == static_cast<long>(per) * threads * (threads + 1) / 2);
    CHECK(poll_until([] { return goro::num_goroutine() == 0; }));
}

TEST_CASE("go: a plain thread's goroutine runs on one worker whose queue never empties while "
          "another goroutine yields",
          "[go][threads][gomaxprocs]") {
    // A goroutine that spawns two children and waits for them, over and over, keeps its
    // worker's own queue from ever being empty; a goroutine that yields in a loop keeps the
    // global queue from ever being empty. Main's goroutine, in main's queue, must still run:
    // the worker's every-61st-round look must not always go to the global queue.
    goro_test::GomaxprocsGuard procs(1);
    REQUIRE(settle_on_one_worker());
    std::atomic<bool> stop{false};
    std::atomic<long> rounds{0}, yields{0};
    goro::WaitGroup busy;
    busy.add(2);
    goro::go([&] {
        while (!stop.load()) {
            goro::WaitGroup children;
            children.add(2);
            goro::go([&] { children.done(); });
            goro::go([&] { children.done(); });
            children.wait();
            rounds.fetch_add(1, std::memory_order_relaxed);
        }
        busy.done();
    });
    goro::go([&] {
        while (!stop.load()) {
            goro::yield();
            yields.fetch_add(1, std::memory_order_relaxed);
        }
        busy.done();
    });
    REQUIRE(poll_until([&] { return rounds.load() > 1000 && yields.load() > 10; }));
    stop_from_a_goroutine(stop);  // hangs if main's goroutine never runs
    busy.wait();
}

TEST_CASE("go: a plain thread's goroutine runs on one worker kept busy by a hand-off chain",
          "[go][threads][gomaxprocs]") {
    // A pair of goroutines passing a token back and forth keeps the worker's runnext slot full
    // for good; the goroutine main starts afterwards sits in main's queue, and must still get
    // its turn once the pair's time slice is used up.
    goro_test::GomaxprocsGuard procs(1);
    REQUIRE(settle_on_one_worker());
    goro::Channel<int> ping, pong;
    std::atomic<bool> stop{false};
    std::atomic<long> handoffs{0};
    goro::WaitGroup pair;
    pair.add(2);
    goro::go([&] {
        while (!stop.load()) {
            ping.send(1);
            pong.recv();
            handoffs.fetch_add(1, std::memory_order_relaxed);
        }
        ping.close();
        pair.done();
    });
    goro::go([&] {
        for (int v : ping) pong.send(v);
        pair.done();
    });
    REQUIRE(poll_until([&] { return handoffs.load() > 1000; }));
    stop_from_a_goroutine(stop);  // hangs if main's goroutine never runs
    pair.wait();
}
