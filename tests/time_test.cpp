// tests/time_test.cpp: sleep_for and sleep_until (goro/time.hpp).
//
// Only lower bounds (a sleep never ends early) and very generous upper bounds are asserted, so
// that a loaded machine or a sanitizer cannot make these tests flaky.
#include "run_util.hpp"
#include "test_util.hpp"

#include <goro/go.hpp>
#include <goro/sync.hpp>
#include <goro/time.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <thread>

using namespace std::chrono_literals;
using goro::Clock;
using goro_test::poll_until;
using goro_test::scaled;
using goro_test::seconds_since;

TEST_CASE("time: sleep_for parks only the goroutine", "[time]") {
    // Serially these sleeps would take 1000 * 50ms = 50 s (12.5 s on four workers).
    const int n = 1000;
    std::atomic<int> early{0};
    goro::WaitGroup wg;
    wg.add(n);
    auto start = Clock::now();
    for (int i = 0; i < n; ++i)
        goro::go([&] {
            auto t0 = Clock::now();
            goro::sleep_for(50ms);
            if (Clock::now() - t0 < 50ms) early.fetch_add(1);
            wg.done();
        });
    wg.wait();
    CHECK(seconds_since(start) < 5.0);
    CHECK(early.load() == 0);
}

TEST_CASE("time: a sleeping goroutine leaves its worker to others", "[time]") {
    // On one worker, a goroutine that runs while the other sleeps proves the worker was free.
    goro_test::GomaxprocsGuard procs(1);
    std::atomic<bool> other_ran{false}, saw{false};
    goro::WaitGroup wg;
    wg.add(2);
    goro::go([&] {
        goro::sleep_for(50ms);
        saw = other_ran.load();
        wg.done();
    });
    goro::go([&] {
        other_ran = true;
        wg.done();
    });
    wg.wait();
    CHECK(saw.load());
}

TEST_CASE("time: elapsed time is at least the requested duration", "[time]") {
    const Clock::duration durations[] = {1us, 100us, 1ms, 5ms, 20ms, 60ms};
    std::atomic<int> early{0}, runs{0};
    goro::WaitGroup wg;
    for (auto d : durations) {
        wg.add(1);
        goro::go([&, d] {
            for (int i = 0; i < 5; ++i) {
                auto t0 = Clock::now();
                goro::sleep_for(d);
                if (Clock::now() - t0 < d) early.fetch_add(1);
                auto until = Clock::now() + d;
                goro::sleep_until(until);
                if (Clock::now() < until) early.fetch_add(1);
                runs.fetch_add(1);
            }
            wg.done();
        });
    }
    wg.wait();
    CHECK(early.load() == 0);
    CHECK(runs.load() == 5 * static_cast<int>(std::size(durations)));
}

TEST_CASE("time: sleep_for and sleep_until on a plain thread", "[time]") {
    REQUIRE_FALSE(goro::in_goroutine());
    auto t0 = Clock::now();
    goro::sleep_for(30ms);
    CHECK(Clock::now() - t0 >= 30ms);
    auto until = Clock::now() + 20ms;
    goro::sleep_until(until);
    CHECK(Clock::now() >= until);

    // Another thread at the same time as goroutines sleep.
    std::atomic<bool> thread_ok{false};
    goro::WaitGroup wg;
    wg.add(10);
    for (int i = 0; i < 10; ++i)
        goro::go([&] {
            goro::sleep_for(10ms);
            wg.done();
        });
    std::thread t([&] {
        auto s = Clock::now();
        goro::sleep_for(15ms);
        thread_ok = Clock::now() - s >= 15ms;
    });
    wg.wait();
    t.join();
    CHECK(thread_ok.load());
}

TEST_CASE("time: sleep_until in the past and zero or negative sleeps return at once", "[time]") {
    auto t0 = Clock::now();
    goro::sleep_until(Clock::now() - 1h);
    goro::sleep_until(Clock::time_point{});
    goro::sleep_for(0s);
    goro::sleep_for(-1s);
    CHECK(seconds_since(t0) < 1.0);

    std::atomic<bool> fast{false};
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        auto s = Clock::now();
        goro::sleep_until(Clock::now() - 1h);
        goro::sleep_until(Clock::time_point{});
        goro::sleep_for(0s);
        goro::sleep_for(-1s);
        fast = seconds_since(s) < 1.0;
        wg.done();
    });
    wg.wait();
    CHECK(fast.load());
}

TEST_CASE("time: 10,000 concurrent sleepers complete", "[time][stress]") {
    // Half are started by the test thread (their timers go to one heap), half by goroutines
    // (their timers go to the heaps of whichever workers run those).
    const int n = scaled(10'000, 100), spawners = 100;
    std::atomic<int> done{0}, early{0};
    goro::WaitGroup wg;
    wg.add(n);
    auto sleeper = [&](int i) {
        auto d = std::chrono::microseconds(500 + (i * 7919) % 20'000);
        auto t0 = Clock::now();
        goro::sleep_for(d);
        if (Clock::now() - t0 < d) early.fetch_add(1);
        done.fetch_add(1);
        wg.done();
    };
    auto start = Clock::now();
    for (int i = 0; i < n / 2; ++i) goro::go(sleeper, i);
    const int rest = n - n / 2;
    goro::WaitGroup spawned;
    spawned.add(spawners);
    for (int s = 0; s < spawners; ++s)
        goro::go([&, s] {
            for (int i = s; i < rest; i += spawners) goro::go(sleeper, n / 2 + i);
            spawned.done();
        });
    spawned.wait();
    wg.wait();
    CHECK(done.load() == n);
    CHECK(early.load() == 0);
    CHECK(seconds_since(start) < 10.0);
}

TEST_CASE("time: sleepers survive GOMAXPROCS shrinking under them", "[time][gomaxprocs]") {
    // Timers of workers that retire move to the remaining ones.
    const int initial = goro::gomaxprocs();
    goro::set_gomaxprocs(4);
    const int n = scaled(2000, 100);
    std::atomic<int> woke{0};
    goro::WaitGroup wg, started;
    wg.add(n);
    started.add(n);
    for (int i = 0; i < n; ++i)
        goro::go([&, i] {
            started.done();
            goro::sleep_for(std::chrono::milliseconds(20 + i % 50));
            woke.fetch_add(1);
            wg.done();
        });
    started.wait();
    goro::set_gomaxprocs(1);
    CHECK(poll_until([&] { return woke.load() == n; }));
    goro::set_gomaxprocs(initial);
    wg.wait();
}

// Huge durations saturate to "never" instead of wrapping into the past (issue 9). The sleepers
// below never wake: their goroutines stay parked, their threads asleep, until the process ends.
TEST_CASE("time: sleep_for(duration::max()) and sleep_until(time_point::max()) never return",
          "[time][huge]") {
    auto sleepers = std::make_shared<std::atomic<int>>(0);  // outlives the test: never woken
    auto woke = std::make_shared<std::atomic<int>>(0);
    auto forever = [sleepers, woke](bool until) {
        sleepers->fetch_add(1);
        if (until) goro::sleep_until(Clock::time_point::max());
        else goro::sleep_for(Clock::duration::max());
        woke->fetch_add(1);
    };
    for (bool until : {false, true}) {
        goro::go([forever, until] { forever(until); });
        std::thread([forever, until] { forever(until); }).detach();
    }
    REQUIRE(poll_until([&] { return sleepers->load() == 4; }));
    goro::sleep_for(50ms);
    REQUIRE(woke->load() == 0);
}
