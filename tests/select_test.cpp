// tests/select_test.cpp: select. Ports of Go's test/chan select programs and of the select tests
// in runtime/chan_test.go, plus the C++ surface (case indices, callbacks, values that are moved
// only when their case is chosen).
#include <goro/goro.hpp>

#include <catch2/catch.hpp>

#include "alloc_counter.hpp"  // counts this binary's allocations, for select2
#include "run_util.hpp"
#include "test_util.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <variant>

using namespace std::chrono_literals;
using goro::Channel;
using goro::RecvChannel;
using goro::SendChannel;

// ---- test/chan/select.go ----

TEST_CASE("select: send cases evaluate their values; nil channels are skipped", "[select][gotest]") {
    unsigned counter = 0, shift = 0;
    auto get_value = [&] {
        ++counter;
        return 1u << shift;
    };
    auto send_all = [&](Channel<unsigned> a, Channel<unsigned> b) {
        int i = 0;
        for (;;) {
            std::size_t r = goro::select(
                goro::send(a, get_value(), [&] {
                    ++i;
                    a = Channel<unsigned>::nil();
                }),
                goro::send(b, get_value(), [&] {
                    ++i;
                    b = Channel<unsigned>::nil();
                }),
                goro::default_case());
            if (r == 2) break;
            ++shift;
        }
        return i;
    };
    Channel<unsigned> a(1), b(1);
    REQUIRE(send_all(a, b) == 2);
    unsigned av = *a.recv(), bv = *b.recv();
    REQUIRE((av | bv) == 3u);
    REQUIRE(send_all(a, Channel<unsigned>::nil()) == 1);
    REQUIRE(counter == 10u);
}

// ---- test/chan/select2.go ----

namespace {

// select2_round() sends n values from a goroutine and receives them with a two-case select on
// the calling thread or goroutine.
bool select2_round(Channel<int> c, Channel<int> dummy, int n) {
    goro::go([c, n] {
        for (int i = 0; i < n; ++i) c.send(1);
    });
    bool ok = true;
    for (int i = 0; i < n; ++i)
        if (goro::select(goro::recv(c), goro::recv(dummy)) != 0) ok = false;
    return ok;
}

}  // namespace

TEST_CASE("select2: a blocking select allocates nothing in steady state", "[select][gotest]") {
    const int n = goro_test::scaled(100000, 10000);
    auto measure = [n] {
        Channel<int> c, dummy;
        REQUIRE(select2_round(c, dummy, n));  // warm up
        auto before = goro_test::alloc_totals();
        long long allocs = before.count, bytes = before.bytes;
        bool ok = select2_round(c, dummy, n);
        allocs = goro_test::alloc_totals().count - allocs;
        bytes = goro_test::alloc_totals().bytes - bytes;
        REQUIRE(ok);
        INFO(allocs << " allocations, " << bytes << " bytes for " << n << " selects");
        // Go's bound is 1.1 bytes per select (select2.go); a per-select allocation would be n.
        CHECK(allocs < n / 100);
        CHECK(bytes < n * 11 / 10);
    };
    SECTION("receiving on a plain thread") { measure(); }
    SECTION("receiving on a goroutine") { goro_test::run_in_goroutine(measure); }
}

// ---- test/chan/select4.go ----

TEST_CASE("select4: only the chosen case's callback runs", "[select][gotest]") {
    Channel<int> c(1), c1;
    c.send(42);
    int x = 0;
    bool f_called = false;
    std::size_t r = goro::select(goro::recv(c1, [&](std::optional<int>) { f_called = true; }),
                                 goro::recv(c, [&](std::optional<int> v) { x = *v; }));
    REQUIRE(r == 1);
    REQUIRE_FALSE(f_called);
    REQUIRE(x == 42);
}

// ---- test/chan/select6.go ----

TEST_CASE("select6: a select woken on one channel leaves the other's queue intact",
          "[select][gotest]") {
    // Issue 2075: a select queued on c1 and woken through c2 must not leave a stale entry on c1,
    // or the sends on c1 below would go to the wrong goroutine.
    Channel<bool> c1, c2, c3;
    std::atomic<bool> panicked{false};
    goro::go([c1] { c1.recv(); });
    goro::go([c1, c2, c3, &panicked] {
        goro::select(goro::recv(c1, [&](std::optional<bool>) { panicked = true; }),
                     goro::recv(c2, [&](std::optional<bool>) { c3.send(true); }));
        c1.recv();
    });
    goro::go([c2] { c2.send(true); });
    c3.recv();
    c1.send(true);
    c1.send(true);
    REQUIRE_FALSE(panicked);
}

// ---- test/chan/select7.go ----

TEST_CASE("select7: single-case and two-case selects pair with plain operations",
          "[select][gotest]") {
    using Recv = void (*)(RecvChannel<int>);
    Recv recv1 = [](RecvChannel<int> c) { c.recv(); };
    Recv recv2 = [](RecvChannel<int> c) { goro::select(goro::recv(c)); };
    Recv recv3 = [](RecvChannel<int> c) {
        Channel<int> c2;
        goro::select(goro::recv(c), goro::recv(c2));
    };
    auto send1 = [](Recv recv) {
        Channel<int> c;
        goro::go(recv, c);
        goro::yield();
        c.send(1);
    };
    auto send2 = [](Recv recv) {
        Channel<int> c;
        goro::go(recv, c);
        goro::yield();
        REQUIRE(goro::select(goro::send(c, 1)) == 0);
    };
    auto send3 = [](Recv recv) {
        Channel<int> c;
        goro::go(recv, c);
        goro::yield();
        Channel<int> c2;
        REQUIRE(goro::select(goro::send(c, 1), goro::send(c2, 1)) == 0);
    };
    goro_test::on_thread_and_goroutine([&] {
        for (Recv r : {recv1, recv2, recv3}) {
            send1(r);
            send2(r);
            send3(r);
        }
    });
}

// ---- runtime/chan_test.go: TestNonblockSelectRace, TestNonblockSelectRace2 ----

TEST_CASE("TestNonblockSelectRace: a non-blocking select sees a channel made ready before it",
          "[select][gotest]") {
    const int n = goro_test::scaled(20000);
    for (bool close_c2 : {false, true}) {
        INFO((close_c2 ? "c2 closed" : "c2 sent to"));
        Channel<bool> done(1);
        int failures = 0;
        for (int i = 0; i < n; ++i) {
            Channel<int> c1(1), c2(1);
            c1.send(1);
            goro::go([c1, c2, done] {
                std::size_t r = goro::select(goro::recv(c1), goro::recv(c2), goro::default_case());
                done.send(r != 2);
            });
            if (close_c2) c2.close();
            else c2.send(1);
            goro::select(goro::recv(c1), goro::default_case());
            if (!*done.recv()) ++failures;
        }
        REQUIRE(failures == 0);
    }
}

// ---- runtime/chan_test.go: TestSelfSelect ----

TEST_CASE("TestSelfSelect: send and receive on the same channel in one select", "[select][gotest]") {
    for (std::size_t cap : {std::size_t(0), std::size_t(10)}) {
        INFO("chan cap " << cap);
        std::atomic<int> self_receives{0};
        goro::WaitGroup wg;
        wg.add(2);
        Channel<int> c(cap);
        for (int p = 0; p < 2; ++p) {
            goro::go([&, c, p, cap] {
                for (int i = 0; i < 1000; ++i) {
                    auto check = [&](std::optional<int> v) {
                        if (cap == 0 && v == p) ++self_receives;
                    };
                    if (p == 0 || i % 2 == 0) goro::select(goro::send(c, int(p)), goro::recv(c, check));
                    else goro::select(goro::recv(c, check), goro::send(c, int(p)));
                }
                wg.done();
            });
        }
        wg.wait();
        REQUIRE(self_receives == 0);
    }
}

// ---- runtime/chan_test.go: TestSelectStress ----

TEST_CASE("TestSelectStress: selects and plain operations on four channels", "[select][gotest]") {
    std::array<Channel<int>, 4> c = {Channel<int>(), Channel<int>(), Channel<int>(2),
                                     Channel<int>(3)};
    const int N = goro_test::scaled(20000);
    // 4 goroutines send N values on each channel, 4 receive N from each, one sends N on each in a
    // single select, one receives N from each in a single select; nothing may deadlock.
    goro::WaitGroup wg;
    wg.add(10);
    std::atomic<int> miscounts{0};
    for (int k = 0; k < 4; ++k) {
        goro::go([&, ch = c[k]] {
            for (int i = 0; i < N; ++i) ch.send(0);
            wg.done();
        });
        goro::go([&, ch = c[k]] {
            for (int i = 0; i < N; ++i) ch.recv();
            wg.done();
        });
    }
    goro::go([&, c1 = c]() mutable {
        std::array<int, 4> n{};
        auto sent = [&](int k) {
            return [&, k] {
                if (++n[k] == N) c1[k] = Channel<int>::nil();
            };
        };
        for (int i = 0; i < 4 * N; ++i)
            goro::select(goro::send(c1[3], 0, sent(3)), goro::send(c1[2], 0, sent(2)),
                         goro::send(c1[0], 0, sent(0)), goro::send(c1[1], 0, sent(1)));
        for (int k = 0; k < 4; ++k)
            if (n[k] != N) ++miscounts;
        wg.done();
    });
    goro::go([&, c1 = c]() mutable {
        std::array<int, 4> n{};
        auto received = [&](int k) {
            return [&, k](std::optional<int> v) {
                if (!v) ++miscounts;
                if (++n[k] == N) c1[k] = Channel<int>::nil();
            };
        };
        for (int i = 0; i < 4 * N; ++i)
            goro::select(goro::recv(c1[0], received(0)), goro::recv(c1[1], received(1)),
                         goro::recv(c1[2], received(2)), goro::recv(c1[3], received(3)));
        for (int k = 0; k < 4; ++k)
            if (n[k] != N) ++miscounts;
        wg.done();
    });
    wg.wait();
    REQUIRE(miscounts == 0);
}

// ---- runtime/chan_test.go: TestSelectFairness ----

TEST_CASE("TestSelectFairness: ready cases are chosen uniformly", "[select][gotest]") {
    constexpr int trials = 10000;
    Channel<unsigned char> c1(trials + 1), c2(trials + 1);
    for (int i = 0; i < trials + 1; ++i) {
        c1.send(1);
        c2.send(2);
    }
    Channel<unsigned char> c3, c4, out;
    Channel<std::monostate> done;
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([=, &wg] {
        for (;;) {
            unsigned char b = 0;
            auto take = [&](std::optional<unsigned char> v) { b = *v; };
            goro::select(goro::recv(c3, take), goro::recv(c4, take), goro::recv(c1, take),
                         goro::recv(c2, take));
            if (goro::select(goro::send(out, b), goro::recv(done)) == 1) break;
        }
        wg.done();
    });
    int cnt1 = 0, cnt2 = 0, other = 0;
    for (int i = 0; i < trials; ++i) {
        switch (*out.recv()) {
            case 1: ++cnt1; break;
            case 2: ++cnt2; break;
            default: ++other;
        }
    }
    done.close();
    wg.wait();
    REQUIRE(other == 0);
    // With 10,000 trials, the margin of error at a confidence level of six nines is
    // 4.891676 / (2 * sqrt(10000)), as in Go.
    double r = double(cnt1) / trials;
    INFO("results were " << cnt1 << ", " << cnt2);
    REQUIRE(std::abs(r - 0.5) <= 4.891676 / (2 * std::sqrt(double(trials))));
}

// ---- runtime/chan_test.go: TestSelectDuplicateChannel ----

TEST_CASE("TestSelectDuplicateChannel: one select queued twice on a channel", "[select][gotest]") {
    Channel<int> c, d, e;
    // goroutine A
    goro::go([c, d, e] {
        goro::select(goro::recv(c), goro::recv(c), goro::recv(d));
        e.send(9);
    });
    goro::sleep_for(5ms);  // A gets queued first on c
    // goroutine B
    std::atomic<int> b_got{0};
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([c, &b_got, &wg] {
        b_got = c.recv().value_or(-1);
        wg.done();
    });
    goro::sleep_for(5ms);  // B gets queued on c before continuing
    d.send(7);              // wakes A, which dequeues itself from c twice
    REQUIRE(e.recv() == 9);
    c.send(8);  // must wake B, not A's stale entries
    wg.wait();
    REQUIRE(b_got == 8);
}

// ---- The C++ surface ----
// select() with no cases blocks forever, as Go's `select {}`; that can only be observed by
// leaking a parked goroutine, so it is not tested here.

TEST_CASE("select returns the index of the case that ran and runs only its callback", "[select]") {
    std::array<Channel<int>, 5> ch = {Channel<int>(1), Channel<int>(1), Channel<int>(1),
                                      Channel<int>(1), Channel<int>(1)};
    for (int k = 0; k < 5; ++k) {
        INFO("ready case " << k);
        ch[k].send(k * 10);
        int ran = -1, value = -1;
        auto cb = [&](int i) {
            return [&, i](std::optional<int> v) {
                ran = i;
                value = v.value_or(-2);
            };
        };
        std::size_t r = goro::select(goro::recv(ch[0], cb(0)), goro::recv(ch[1], cb(1)),
                                     goro::recv(ch[2], cb(2)), goro::recv(ch[3], cb(3)),
                                     goro::recv(ch[4], cb(4)));
        REQUIRE(r == std::size_t(k));
        REQUIRE(ran == k);
        REQUIRE(value == k * 10);
    }
    // The index counts the default case and send cases too.
    Channel<int> full(1);
    full.send(0);
    bool sent = false, defaulted = false;
    REQUIRE(goro::select(goro::send(full, 1), goro::default_case([&] { defaulted = true; }),
                         goro::recv(ch[0])) == 1);
    REQUIRE(defaulted);
    Channel<int> room(1);
    REQUIRE(goro::select(goro::send(full, 1), goro::recv(ch[0]), goro::default_case(),
                         goro::send(room, 5, [&] { sent = true; })) == 3);
    REQUIRE(sent);
    REQUIRE(room.recv() == 5);
}

TEST_CASE("default_case makes select non-blocking", "[select]") {
    Channel<int> unbuffered, empty(3), full(1);
    full.send(1);
    int defaults = 0;
    auto on_default = [&] { ++defaults; };
    REQUIRE(goro::select(goro::recv(unbuffered), goro::default_case(on_default)) == 1);
    REQUIRE(goro::select(goro::send(unbuffered, 1), goro::default_case(on_default)) == 1);
    REQUIRE(goro::select(goro::recv(empty), goro::send(full, 2), goro::default_case(on_default)) ==
            2);
    REQUIRE(goro::select(goro::default_case(on_default)) == 0);
    REQUIRE(defaults == 4);
    REQUIRE(goro::select(goro::default_case()) == 0);
    // A ready case always beats default.
    for (int i = 0; i < 100; ++i) {
        empty.send(i);
        REQUIRE(goro::select(goro::default_case(), goro::recv(empty)) == 1);
    }
}

TEST_CASE("a recv case's callback receives std::optional: nullopt once closed", "[select]") {
    Channel<std::string> c(2);
    c.send("x");
    c.close();
    std::optional<std::string> got;
    int calls = 0;
    auto cb = [&](std::optional<std::string> v) {
        ++calls;
        got = std::move(v);
    };
    REQUIRE(goro::select(goro::recv(c, cb), goro::default_case()) == 0);
    REQUIRE(got == "x");  // buffered values come first
    REQUIRE(goro::select(goro::recv(c, cb), goro::default_case()) == 0);
    REQUIRE(got == std::nullopt);  // then the closed channel is always ready
    REQUIRE(calls == 2);

    // A parked select woken by close.
    Channel<int> d;
    std::optional<int> seen = 1;
    goro::go([d] {
        goro::sleep_for(2ms);
        d.close();
    });
    Channel<int> never;
    REQUIRE(goro::select(goro::recv(never), goro::recv(d, [&](std::optional<int> v) { seen = v; })) ==
            1);
    REQUIRE(seen == std::nullopt);

    // A callback that takes no argument is accepted too.
    Channel<int> e(1);
    e.send(3);
    bool ran = false;
    REQUIRE(goro::select(goro::recv(e, [&] { ran = true; })) == 0);
    REQUIRE(ran);
}

TEST_CASE("a send case on a closed channel throws ChannelClosed", "[select]") {
    Channel<int> closed(1);
    closed.close();
    Channel<int> never;
    REQUIRE_THROWS_AS(goro::select(goro::send(closed, 1)), goro::ChannelClosed);
    REQUIRE_THROWS_AS(goro::select(goro::send(closed, 1), goro::default_case()), goro::ChannelClosed);
    REQUIRE_THROWS_AS(goro::select(goro::recv(never), goro::send(closed, 1)), goro::ChannelClosed);
    REQUIRE_THROWS_AS(goro::select(goro::recv(never), goro::send(closed, 1), goro::default_case()),
                      goro::ChannelClosed);
    bool ran = false;
    REQUIRE_THROWS_AS(goro::select(goro::send(closed, 1, [&] { ran = true; }), goro::recv(never)),
                      goro::ChannelClosed);
    REQUIRE_FALSE(ran);

    // A select parked on a send is woken by close and throws.
    goro_test::on_thread_and_goroutine([] {
        Channel<int> c;
        Channel<int> other;
        goro::go([c] {
            goro::sleep_for(2ms);
            c.close();
        });
        REQUIRE_THROWS_AS(goro::select(goro::send(c, 1), goro::recv(other)), goro::ChannelClosed);
    });
}

TEST_CASE("a send case's value is moved only if that case is chosen", "[select]") {
    using P = std::unique_ptr<int>;
    Channel<P> full(1);
    full.send(std::make_unique<int>(0));
    Channel<int> ready(1);

    // Another case is ready at once.
    P p = std::make_unique<int>(7);
    ready.send(1);
    REQUIRE(goro::select(goro::send(full, std::move(p)), goro::recv(ready)) == 1);
    REQUIRE(p != nullptr);
    REQUIRE(*p == 7);

    // Default wins.
    REQUIRE(goro::select(goro::send(full, std::move(p)), goro::default_case()) == 1);
    REQUIRE(p != nullptr);
    REQUIRE(*p == 7);

    // Another case wins after the select has parked.
    goro_test::on_thread_and_goroutine([&] {
        Channel<int> later;
        goro::go([later] {
            goro::sleep_for(2ms);
            later.send(2);
        });
        REQUIRE(goro::select(goro::send(full, std::move(p)), goro::recv(later)) == 1);
        REQUIRE(p != nullptr);
        REQUIRE(*p == 7);
    });

    // When the send case is chosen, the value arrives.
    full.recv();
    REQUIRE(goro::select(goro::send(full, std::move(p)), goro::recv(Channel<int>())) == 0);
    std::optional<P> got = full.recv();
    REQUIRE(got.has_value());
    REQUIRE(*got != nullptr);
    REQUIRE(**got == 7);

    // Chosen after parking: a receiver arrives later.
    Channel<P> unbuffered;
    P q = std::make_unique<int>(8);
    goro::go([unbuffered] {
        goro::sleep_for(2ms);
        unbuffered.recv();
    });
    REQUIRE(goro::select(goro::send(unbuffered, std::move(q)), goro::recv(Channel<int>())) == 0);
}

TEST_CASE("nil channels in select are never chosen", "[select]") {
    auto nil = Channel<int>::nil();
    SendChannel<int> nil_send = nil;
    RecvChannel<int> nil_recv = nil;
    for (int i = 0; i < 100; ++i) {
        REQUIRE(goro::select(goro::recv(nil), goro::send(nil, 1), goro::recv(nil_recv),
                             goro::send(nil_send, 2), goro::default_case()) == 4);
    }
    Channel<int> ready(1);
    for (int i = 0; i < 100; ++i) {
        ready.send(i);
        REQUIRE(goro::select(goro::recv(nil), goro::send(nil, 1), goro::recv(ready)) == 2);
    }
}

TEST_CASE("select over send-only and receive-only views", "[select]") {
    Channel<int> c(1);
    SendChannel<int> s = c;
    RecvChannel<int> r = c;
    REQUIRE(goro::select(goro::send(s, 4)) == 0);
    int got = 0;
    REQUIRE(goro::select(goro::recv(r, [&](std::optional<int> v) { got = *v; })) == 0);
    REQUIRE(got == 4);
}

TEST_CASE("select blocks a plain thread until a goroutine makes a case ready", "[select][thread]") {
    // And the other way round: a goroutine's select woken by a plain thread.
    Channel<int> a, b;
    goro::go([b] {
        goro::sleep_for(2ms);
        b.send(2);
    });
    int got = 0;
    REQUIRE(goro::select(goro::recv(a), goro::recv(b, [&](std::optional<int> v) { got = *v; })) ==
            1);
    REQUIRE(got == 2);

    Channel<int> result;
    goro::go([a, b, result] {
        int v = 0;
        goro::select(goro::recv(a, [&](std::optional<int> x) { v = *x; }),
                     goro::recv(b, [&](std::optional<int> x) { v = -*x; }));
        result.send(v);
    });
    std::thread t([a] {
        std::this_thread::sleep_for(2ms);
        a.send(5);
    });
    REQUIRE(result.recv() == 5);
    t.join();
}

TEST_CASE("many goroutines select over shared channels, every value exactly once", "[select]") {
    // Producers select over two channels; consumers select over both plus a quit channel.
    const int per = goro_test::scaled(5000);
    constexpr int producers = 4, consumers = 4;
    Channel<int> x, y(8);
    Channel<std::monostate> quit;
    Channel<long long> sums(consumers);
    goro::WaitGroup produced;
    produced.add(producers);
    for (int p = 0; p < producers; ++p)
        goro::go([=, &produced] {
            for (int i = 1; i <= per; ++i) goro::select(goro::send(x, int(i)), goro::send(y, int(i)));
            produced.done();
        });
    for (int k = 0; k < consumers; ++k)
        goro::go([=] {
            long long s = 0;
            for (bool more = true; more;) {
                auto add = [&](std::optional<int> v) { s += *v; };
                goro::select(goro::recv(x, add), goro::recv(y, add),
                             goro::recv(quit, [&] {
                                 // Drain what is buffered, then stop.
                                 while (goro::select(goro::recv(y, add), goro::default_case()) == 0) {}
                                 more = false;
                             }));
            }
            sums.send(s);
        });
    produced.wait();
    quit.close();
    long long total = 0;
    for (int k = 0; k < consumers; ++k) total += *sums.recv();
    REQUIRE(total == 1LL * producers * per * (per + 1) / 2);
}
