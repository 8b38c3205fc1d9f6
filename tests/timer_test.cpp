// tests/timer_test.cpp: after, tick, Timer and Ticker (Go's time.After, time.Tick, time.Timer,
// time.Ticker), with Go 1.19's semantics: capacity-1 channels that drop missed ticks, and
// Stop/Reset reporting whether the timer was active. Timing bounds are lower bounds (a timer
// never fires early) and generous upper bounds, so a loaded machine cannot make them flaky.
#include <goro/goro.hpp>

#include <catch2/catch.hpp>

#include "run_util.hpp"
#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using goro::Channel;
using goro::Clock;
using goro::RecvChannel;

namespace {

constexpr auto kLong = 5s;  // "should have happened by now", even on a loaded machine

// recv_within() receives from c, or gives up after `limit`; nullopt if it gave up.
std::optional<Clock::time_point> recv_within(RecvChannel<Clock::time_point> c,
                                             Clock::duration limit = kLong) {
    std::optional<Clock::time_point> got;
    goro::select(goro::recv(c, [&](std::optional<Clock::time_point> v) { got = v; }),
                 goro::recv(goro::after(limit)));
    return got;
}

// ready() tells whether a receive from c would succeed now; it does not receive.
bool ready(const RecvChannel<Clock::time_point>& c) { return c.size() > 0; }

// drain() receives whatever is buffered in c without blocking; returns how many values.
int drain(const RecvChannel<Clock::time_point>& c) {
    int n = 0;
    while (goro::select(goro::recv(c), goro::default_case()) == 0) ++n;
    return n;
}

}  // namespace

TEST_CASE("after delivers the time once, no earlier than asked", "[time][timer]") {
    goro_test::on_thread_and_goroutine([] {
        auto start = Clock::now();
        RecvChannel<Clock::time_point> c = goro::after(20ms);
        REQUIRE(c.capacity() == 1);
        std::optional<Clock::time_point> t = c.recv();
        auto end = Clock::now();
        REQUIRE(t.has_value());
        REQUIRE(end - start >= 20ms);
        REQUIRE(*t >= start + 20ms);  // the value is the time it fired
        REQUIRE(*t <= end);
        // Only one value: the channel is not closed, it simply stays empty.
        goro::sleep_for(30ms);
        REQUIRE(c.size() == 0);
        REQUIRE(goro::select(goro::recv(c), goro::default_case()) == 1);
    });
}

TEST_CASE("after with a zero or negative duration fires at once", "[time][timer]") {
    REQUIRE(recv_within(goro::after(0s)).has_value());
    REQUIRE(recv_within(goro::after(-5s)).has_value());
}

TEST_CASE("after's channel is kept alive by its pending timer", "[time][timer]") {
    // The returned handle is the only one a caller holds; dropping others must not matter.
    std::vector<RecvChannel<Clock::time_point>> cs;
    for (int i = 0; i < 100; ++i) cs.push_back(goro::after(std::chrono::milliseconds(i % 10)));
    for (auto& c : cs) REQUIRE(recv_within(c).has_value());
    // And dropping the only handle before it fires is harmless.
    for (int i = 0; i < 100; ++i) (void)goro::after(1ms);
    goro::sleep_for(20ms);
}

TEST_CASE("tick delivers periodically, never early, in increasing order", "[time][ticker]") {
    auto start = Clock::now();
    RecvChannel<Clock::time_point> c = goro::tick(10ms);
    REQUIRE(c.capacity() == 1);
    Clock::time_point prev = start;
    for (int i = 0; i < 5; ++i) {
        auto t = recv_within(c);
        REQUIRE(t.has_value());
        REQUIRE(*t > prev);
        prev = *t;
    }
    REQUIRE(Clock::now() - start >= 50ms);
    REQUIRE(prev >= start + 50ms);
}

TEST_CASE("tick with a non-positive period returns the nil channel", "[time][ticker]") {
    // Go: Tick returns nil if d <= 0.
    auto c = goro::tick(0s);
    REQUIRE(goro::select(goro::recv(c), goro::default_case()) == 1);
    auto d = goro::tick(-1s);
    REQUIRE(d.capacity() == 0);
    REQUIRE(goro::select(goro::recv(d), goro::default_case()) == 1);
}

TEST_CASE("Timer fires once; stop and reset report whether it was active", "[time][timer]") {
    SECTION("stop before it fires: true, then false; nothing is delivered") {
        goro::Timer t(50ms);
        REQUIRE(t.c().capacity() == 1);
        REQUIRE(t.stop());
        REQUIRE_FALSE(t.stop());  // Go: "Stop returned true twice"
        goro::sleep_for(120ms);
        REQUIRE_FALSE(ready(t.c()));
    }
    SECTION("stop after it fired and was received: false") {
        goro::Timer t(1ms);
        REQUIRE(recv_within(t.c()).has_value());
        REQUIRE_FALSE(t.stop());
    }
    SECTION("stop after it fired but before a receive: false, and the value stays (Go 1.19)") {
        goro::Timer t(1ms);
        REQUIRE(goro_test::poll_until([&] { return ready(t.c()); }));
        REQUIRE_FALSE(t.stop());
        REQUIRE(drain(t.c()) == 1);  // Stop does not drain the channel
    }
    SECTION("reset of an active timer: true; it then fires at the new time") {
        goro::Timer t(1h);
        auto start = Clock::now();
        REQUIRE(t.reset(20ms));
        auto v = recv_within(t.c());
        REQUIRE(v.has_value());
        REQUIRE(*v >= start + 20ms);
        REQUIRE_FALSE(t.reset(1h));  // fired and received: not active
        REQUIRE(t.stop());           // but the reset re-armed it
    }
    SECTION("reset of a stopped timer: false; it fires again") {
        goro::Timer t(1h);
        REQUIRE(t.stop());
        REQUIRE_FALSE(t.reset(1ms));
        REQUIRE(recv_within(t.c()).has_value());
    }
    SECTION("reset can postpone: testReset from sleep_test.go with growing units") {
        // Go retries with longer durations so slow machines pass; so do we.
        const std::string err = [] {
            std::string e;
            for (auto d : {25ms, 75ms, 175ms, 375ms}) {
                goro::Timer t0(2 * d);
                goro::sleep_for(d);
                if (!t0.reset(3 * d)) return std::string("resetting unfired timer returned false");
                goro::sleep_for(2 * d);
                if (ready(t0.c())) {
                    e = "timer fired early";
                    continue;
                }
                goro::sleep_for(2 * d);
                if (drain(t0.c()) != 1) {
                    e = "reset timer did not fire";
                    continue;
                }
                if (t0.reset(50ms)) return std::string("resetting expired timer returned true");
                return std::string();
            }
            return e;
        }();
        REQUIRE(err == "");
    }
}

TEST_CASE("TestAfterStop: stopped timers do not fire", "[time][timer]") {
    goro::Timer t0(50ms);
    goro::Timer t1(150ms);
    auto c2 = goro::after(200ms);
    REQUIRE(t0.stop());
    REQUIRE(t1.stop());
    REQUIRE(recv_within(c2).has_value());
    REQUIRE(goro::select(goro::recv(t0.c()), goro::recv(t1.c()), goro::default_case()) == 2);
    REQUIRE_FALSE(t1.stop());
}

TEST_CASE("a Timer's channel keeps one value; a slow reader gets exactly that one", "[time][timer]") {
    goro::Timer t(1ms);
    goro::sleep_for(50ms);
    REQUIRE(t.c().size() == 1);
    auto v = t.c().recv();
    REQUIRE(v.has_value());
    REQUIRE(t.c().size() == 0);
}

TEST_CASE("Ticker drops the ticks a slow reader misses", "[time][ticker]") {
    goro_test::on_thread_and_goroutine([] {
        goro::Ticker tk(10ms);
        REQUIRE(tk.c().capacity() == 1);
        goro::sleep_for(200ms);  // 20 periods
        REQUIRE(tk.c().size() == 1);
        // One buffered tick, not twenty. (A fresh tick may land while draining: allow it.)
        int n = drain(tk.c());
        REQUIRE(n >= 1);
        REQUIRE(n <= 2);
        // And ticking goes on.
        REQUIRE(recv_within(tk.c()).has_value());
    });
}

TEST_CASE("Ticker stop: no more ticks", "[time][ticker]") {
    goro::Ticker tk(5ms);
    REQUIRE(recv_within(tk.c()).has_value());
    tk.stop();
    goro::sleep_for(50ms);  // a tick already being delivered when stop ran lands by now
    drain(tk.c());
    goro::sleep_for(60ms);
    REQUIRE_FALSE(ready(tk.c()));
    tk.stop();  // stopping twice is harmless

    // TestTeardown: start, one tick, stop, a few times.
    for (int i = 0; i < 3; ++i) {
        goro::Ticker t(20ms);
        REQUIRE(recv_within(t.c()).has_value());
        t.stop();
    }
}

TEST_CASE("Ticker reset changes the period and restarts a stopped ticker", "[time][ticker]") {
    SECTION("TestTicker: 5 ticks of d, reset to 2d, 5 more, take at least 15d") {
        constexpr auto delta = 20ms;
        goro::Ticker tk(delta);
        auto t0 = Clock::now();
        for (int i = 0; i < 5; ++i) REQUIRE(recv_within(tk.c()).has_value());
        tk.reset(2 * delta);
        for (int i = 0; i < 5; ++i) REQUIRE(recv_within(tk.c()).has_value());
        tk.stop();
        auto dt = Clock::now() - t0;
        REQUIRE(dt >= 3 * delta * 5);
        REQUIRE(dt < 10s);
    }
    SECTION("reset from a long period to a short one") {
        goro::Ticker tk(1h);
        auto start = Clock::now();
        tk.reset(10ms);
        auto v = recv_within(tk.c());
        REQUIRE(v.has_value());
        REQUIRE(*v >= start + 10ms);
    }
    SECTION("reset restarts a stopped ticker") {
        goro::Ticker tk(10ms);
        tk.stop();
        goro::sleep_for(30ms);
        drain(tk.c());
        tk.reset(5ms);
        REQUIRE(recv_within(tk.c()).has_value());
        REQUIRE(recv_within(tk.c()).has_value());
    }
    SECTION("a non-positive period is rejected, as Go panics") {
        REQUIRE_THROWS_AS(goro::Ticker(0s), std::invalid_argument);
        REQUIRE_THROWS_AS(goro::Ticker(-1ms), std::invalid_argument);
        goro::Ticker tk(1h);
        REQUIRE_THROWS_AS(tk.reset(0s), std::invalid_argument);
    }
}

TEST_CASE("10,000 concurrent timers", "[time][timer][stress]") {
    const int n = goro_test::scaled(10000, 100);
    SECTION("goroutines waiting on after") {
        std::atomic<int> early{0}, fired{0};
        goro::WaitGroup wg;
        wg.add(n);
        for (int i = 0; i < n; ++i) {
            goro::go([&, i] {
                auto d = std::chrono::milliseconds(1 + i % 50);
                auto start = Clock::now();
                auto t = goro::after(d).recv();
                if (!t || *t < start + d) ++early;
                ++fired;
                wg.done();
            });
        }
        wg.wait();
        REQUIRE(fired == n);
        REQUIRE(early == 0);
    }
    SECTION("Timers from one thread, every other one stopped") {
        std::vector<goro::Timer> timers;
        timers.reserve(n);
        for (int i = 0; i < n; ++i)
            timers.emplace_back(i % 2 == 0 ? Clock::duration(1h)
                                           : Clock::duration(std::chrono::milliseconds(1 + i % 30)));
        int stopped = 0;
        for (int i = 0; i < n; i += 2) stopped += timers[i].stop() ? 1 : 0;
        REQUIRE(stopped == (n + 1) / 2);
        for (int i = 1; i < n; i += 2) REQUIRE(recv_within(timers[i].c()).has_value());
        int stopped_fired = 0;
        for (int i = 0; i < n; i += 2) stopped_fired += ready(timers[i].c()) ? 1 : 0;
        REQUIRE(stopped_fired == 0);
        // Fired timers are no longer active.
        int active = 0;
        for (int i = 1; i < n; i += 2) active += timers[i].stop() ? 1 : 0;
        REQUIRE(active == 0);
    }
}

TEST_CASE("timers from plain threads", "[time][timer][thread]") {
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&ok, i] {
            auto start = Clock::now();
            auto d = std::chrono::milliseconds(5 + i);
            auto t = goro::after(d).recv();  // blocks this thread
            goro::Timer tm(1h);
            bool stopped = tm.stop();
            goro::Ticker tk(2ms);
            auto a = tk.c().recv();
            auto b = tk.c().recv();
            tk.stop();
            if (t && *t >= start + d && stopped && a && b && *b > *a) ++ok;
        });
    }
    for (auto& t : threads) t.join();
    REQUIRE(ok == 4);

    // A Timer made on a plain thread, received on a goroutine, and the other way round.
    goro::Timer made_here(5ms);
    Channel<bool> got;
    goro::go([c = made_here.c(), got] { got.send(c.recv().has_value()); });
    REQUIRE(got.recv() == true);

    Channel<RecvChannel<Clock::time_point>> handoff(1);
    goro::go([handoff] { handoff.send(goro::after(5ms)); });
    bool received = false;
    std::thread t([&] { received = handoff.recv()->recv().has_value(); });
    t.join();
    REQUIRE(received);
}

// ---- Seed patterns ----

TEST_CASE("pattern: select with a timeout", "[time][pattern]") {
    goro_test::on_thread_and_goroutine([] {
        // Nothing arrives: the timeout case runs.
        Channel<int> ch;
        bool timed_out = false;
        auto start = Clock::now();
        std::size_t r = goro::select(goro::recv(ch, [](std::optional<int>) {}),
                                     goro::recv(goro::after(50ms), [&] { timed_out = true; }));
        REQUIRE(r == 1);
        REQUIRE(timed_out);
        REQUIRE(Clock::now() - start >= 50ms);

        // The value arrives first: the timeout does not run.
        Channel<int> fast(1);
        goro::go([fast] { fast.send(7); });
        int got = 0;
        r = goro::select(goro::recv(fast, [&](std::optional<int> v) { got = *v; }),
                         goro::recv(goro::after(kLong)));
        REQUIRE(r == 0);
        REQUIRE(got == 7);
    });
}

TEST_CASE("pattern: rate limiting with tick and a burst bucket", "[time][pattern]") {
    static constexpr auto period = 20ms;
    SECTION("one request per tick") {
        Channel<int> requests(5);
        for (int i = 1; i <= 5; ++i) requests.send(i);
        requests.close();
        RecvChannel<Clock::time_point> limiter = goro::tick(period);
        auto start = Clock::now();
        int served = 0;
        for (int req : requests) {
            REQUIRE(limiter.recv().has_value());
            served += req;
        }
        REQUIRE(served == 15);
        REQUIRE(Clock::now() - start >= 5 * period);  // 5 requests wait for 5 ticks
    }
    SECTION("a bucket of 3 for bursts, refilled by a ticker goroutine") {
        Channel<Clock::time_point> bursty(3);
        const auto prefill = Clock::now();
        for (int i = 0; i < 3; ++i) bursty.send(prefill);
        Channel<std::monostate> quit;
        goro::WaitGroup wg;
        wg.add(1);
        goro::go([bursty, quit, &wg] {
            RecvChannel<Clock::time_point> refill = goro::tick(period);
            for (bool more = true; more;) {
                Clock::time_point t;
                if (goro::select(goro::recv(refill, [&](std::optional<Clock::time_point> v) { t = *v; }),
                                 goro::recv(quit)) == 1)
                    break;
                goro::select(goro::send(bursty, Clock::time_point(t)),
                             goro::recv(quit, [&] { more = false; }));
            }
            wg.done();
        });

        Channel<int> requests(5);
        for (int i = 1; i <= 5; ++i) requests.send(i);
        requests.close();
        std::vector<Clock::time_point> tokens;
        for (int req : requests) {
            (void)req;
            auto token = bursty.recv();
            REQUIRE(token.has_value());
            tokens.push_back(*token);
        }
        // The first three are the burst (served from the bucket, FIFO); the last two waited
        // for ticks that came after the bucket was filled.
        REQUIRE(tokens.size() == 5);
        for (int i = 0; i < 3; ++i) REQUIRE(tokens[i] == prefill);
        REQUIRE(tokens[3] > prefill);
        REQUIRE(tokens[4] > tokens[3]);
        REQUIRE(tokens[3] >= prefill + period);  // the refill ticker started after the prefill
        quit.close();
        wg.wait();
    }
}

// ---- Huge durations (issue 9): now + duration::max() is never, not the past ----

namespace {

// never_within() tells whether c stays silent for `wait`: a select that must choose the
// short timer.
bool never_within(const RecvChannel<Clock::time_point>& c, Clock::duration wait = 50ms) {
    return goro::select(goro::recv(c), goro::recv(goro::after(wait))) == 1;
}

}  // namespace

TEST_CASE("after, tick, Timer and Ticker of duration::max() never fire", "[time][timer][huge]") {
    goro_test::on_thread_and_goroutine([] {
        constexpr auto huge = Clock::duration::max();
        REQUIRE(never_within(goro::after(huge)));
        REQUIRE(never_within(goro::tick(huge)));

        goro::Timer t(huge);
        REQUIRE(never_within(t.c()));
        REQUIRE(t.stop());  // it was pending, as a Go timer of maxWhen is
        REQUIRE(t.reset(1ms) == false);
        REQUIRE(recv_within(t.c()).has_value());
        REQUIRE_FALSE(t.reset(huge));
        REQUIRE(never_within(t.c()));
        REQUIRE(t.stop());

        goro::Ticker tk(huge);
        REQUIRE(never_within(tk.c()));
        tk.reset(1ms);
        REQUIRE(recv_within(tk.c()).has_value());
        tk.reset(huge);
        goro::sleep_for(10ms);  // a tick already being delivered lands by now
        drain(tk.c());
        REQUIRE(never_within(tk.c()));
    });
}

TEST_CASE("a periodic timer whose next run is past the clock's range stops, not spins",
          "[time][timer][huge]") {
    // Fires once now; then when + period overflows: saturated, it is never due again
    // (Go's runOneTimer: "if t.when < 0 { t.when = maxWhen }").
    static std::atomic<int> runs{0};
    goro::detail::Timer t;
    t.when = goro::detail::nanotime();
    t.period = INT64_MAX - 1;
    t.f = [](goro::detail::Timer*) { runs.fetch_add(1); };
    t.retain = [](goro::detail::Timer*) {};  // t outlives every run: no reference to take
    auto& sched = goro::detail::Scheduler::instance();
    sched.timer_start(&t);
    REQUIRE(goro_test::poll_until([] { return runs.load() >= 1; }));
    goro::sleep_for(50ms);
    CHECK(runs.load() == 1);
    REQUIRE(sched.timer_stop(&t));  // still pending, at never
}
