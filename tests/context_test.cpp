// tests/context_test.cpp: contexts (Go's context package): cancellation trees, deadlines,
// values, and the release of cancelled children; ports of context_test.go and the usual
// patterns (worker pool, pipeline, fan-out/fan-in).
#include <goro/goro.hpp>

#include <catch2/catch.hpp>

#include "alloc_counter.hpp"  // counts this binary's live allocations
#include "run_util.hpp"
#include "test_util.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using goro::Channel;
using goro::Clock;
using goro::Context;
using goro::ContextKey;

namespace {

constexpr auto kLong = 10s;  // "should have happened by now", even on a loaded machine

bool is_done(const Context& ctx) {
    return goro::select(goro::recv(ctx.done()), goro::default_case()) == 0;
}

// wait_done() waits for ctx to be done, for at most `limit`.
bool wait_done(const Context& ctx, Clock::duration limit = kLong) {
    return goro::select(goro::recv(ctx.done()), goro::recv(goro::after(limit))) == 0;
}

const ContextKey<std::string> k1{"k1"};
const ContextKey<std::string> k2{"k2"};
const ContextKey<std::string> k3{"k3"};

}  // namespace

TEST_CASE("background is never done and carries nothing", "[context]") {
    Context bg = goro::background();
    REQUIRE_FALSE(is_done(bg));
    REQUIRE_FALSE(bg.err());
    REQUIRE(bg.err() == std::error_code());
    REQUIRE_FALSE(bg.deadline().has_value());
    REQUIRE(bg.value(k1) == nullptr);
    // Its done channel stays open: still not ready a little later.
    goro::sleep_for(5ms);
    REQUIRE_FALSE(is_done(bg));
    REQUIRE(goro::select(goro::recv(bg.done()), goro::recv(goro::after(20ms))) == 1);
}

TEST_CASE("err() and its messages", "[context]") {
    std::error_code canceled = goro::errc::canceled;
    std::error_code exceeded = goro::errc::deadline_exceeded;
    REQUIRE(canceled);
    REQUIRE(exceeded);
    REQUIRE(canceled != exceeded);
    REQUIRE(canceled.message() == "context canceled");
    REQUIRE(exceeded.message() == "context deadline exceeded");
}

TEST_CASE("with_cancel: done and err before and after cancel", "[context]") {
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    REQUIRE_FALSE(is_done(ctx));
    REQUIRE_FALSE(ctx.err());
    REQUIRE_FALSE(ctx.deadline().has_value());
    cancel();
    REQUIRE(is_done(ctx));
    REQUIRE(ctx.done().recv() == std::nullopt);  // closed, not sent to
    REQUIRE(ctx.err() == goro::errc::canceled);
    REQUIRE(ctx.err().message() == "context canceled");
    // Cancel functions are idempotent.
    cancel();
    cancel();
    REQUIRE(ctx.err() == goro::errc::canceled);

    // A copy of the handle sees the same context.
    Context copy = ctx;
    REQUIRE(copy.err() == goro::errc::canceled);

    // Concurrent cancels, from goroutines and plain threads, are harmless.
    auto [ctx2, cancel2] = goro::with_cancel(goro::background());
    goro::WaitGroup wg;
    wg.add(8);
    for (int i = 0; i < 4; ++i)
        goro::go([&wg, c = cancel2] {
            c();
            wg.done();
        });
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&wg, c = cancel2] {
            c();
            wg.done();
        });
    wg.wait();
    for (auto& t : threads) t.join();
    REQUIRE(ctx2.err() == goro::errc::canceled);
}

TEST_CASE("ParentFinishesChild: cancelling a parent cancels its whole subtree", "[context][gotest]") {
    // parent -> cancel_child; parent -> value_child -> timer_child
    auto [parent, cancel] = goro::with_cancel(goro::background());
    auto [cancel_child, stop1] = goro::with_cancel(parent);
    Context value_child = goro::with_value(parent, k1, std::string("value"));
    auto [timer_child, stop2] = goro::with_timeout(value_child, 1h);

    REQUIRE(goro::select(goro::recv(parent.done()), goro::recv(cancel_child.done()),
                         goro::recv(timer_child.done()), goro::recv(value_child.done()),
                         goro::default_case()) == 4);
    cancel();
    for (const Context* c : {&parent, &cancel_child, &value_child, &timer_child}) {
        REQUIRE(is_done(*c));
        REQUIRE(c->err() == goro::errc::canceled);
    }
    // A value context of a cancelled parent is done at once.
    Context precanceled = goro::with_value(parent, k2, std::string("value"));
    REQUIRE(is_done(precanceled));
    REQUIRE(precanceled.err() == goro::errc::canceled);
    REQUIRE(precanceled.value(k1) == nullptr);  // k1 lives on value_child, a sibling
    REQUIRE(*precanceled.value(k2) == "value");
    stop1();
    stop2();
}

TEST_CASE("ChildFinishesFirst: cancelling a child leaves its parent alone", "[context][gotest]") {
    auto [cancelable, stop] = goro::with_cancel(goro::background());
    for (const Context& parent : {goro::background(), cancelable}) {
        auto [child, cancel_child] = goro::with_cancel(parent);
        REQUIRE_FALSE(is_done(parent));
        REQUIRE_FALSE(is_done(child));
        cancel_child();
        REQUIRE(is_done(child));
        REQUIRE(child.err() == goro::errc::canceled);
        REQUIRE_FALSE(is_done(parent));
        REQUIRE_FALSE(parent.err());
    }
    stop();
}

TEST_CASE("WithCancelCanceledParent: a child of a cancelled parent starts cancelled",
          "[context][gotest]") {
    auto [parent, cancel] = goro::with_cancel(goro::background());
    cancel();
    auto [c, cancel_c] = goro::with_cancel(parent);
    REQUIRE(is_done(c));
    REQUIRE(c.err() == goro::errc::canceled);
    auto [t, cancel_t] = goro::with_timeout(parent, 1h);
    REQUIRE(is_done(t));
    REQUIRE(t.err() == goro::errc::canceled);
    cancel_c();
    cancel_t();
}

TEST_CASE("with_deadline: fires at the deadline with deadline_exceeded", "[context][gotest]") {
    SECTION("in the future") {
        auto start = Clock::now();
        auto t = start + 50ms;
        auto [ctx, cancel] = goro::with_deadline(goro::background(), t);
        REQUIRE(ctx.deadline() == t);
        REQUIRE(wait_done(ctx));
        REQUIRE(Clock::now() >= t);
        REQUIRE(ctx.err() == goro::errc::deadline_exceeded);
        REQUIRE(ctx.err().message() == "context deadline exceeded");
        cancel();  // after the deadline: err stays deadline_exceeded
        REQUIRE(ctx.err() == goro::errc::deadline_exceeded);
    }
    SECTION("in the past, or now: done at once") {
        for (auto t : {Clock::now() - 50ms, Clock::now()}) {
            auto [ctx, cancel] = goro::with_deadline(goro::background(), t);
            REQUIRE(is_done(ctx));
            REQUIRE(ctx.err() == goro::errc::deadline_exceeded);
            REQUIRE(ctx.deadline() == t);
            cancel();
        }
    }
    SECTION("cancelled before the deadline: canceled, and it stays so") {
        auto [ctx, cancel] = goro::with_deadline(goro::background(), Clock::now() + 30ms);
        cancel();
        REQUIRE(ctx.err() == goro::errc::canceled);
        goro::sleep_for(60ms);
        REQUIRE(ctx.err() == goro::errc::canceled);
    }
}

TEST_CASE("with_timeout fires; CanceledTimeout reports canceled", "[context][gotest]") {
    goro_test::on_thread_and_goroutine([] {
        auto start = Clock::now();
        auto [ctx, cancel] = goro::with_timeout(goro::background(), 20ms);
        REQUIRE(ctx.deadline().has_value());
        REQUIRE(*ctx.deadline() >= start + 20ms);
        REQUIRE(wait_done(ctx));
        REQUIRE(Clock::now() - start >= 20ms);
        REQUIRE(ctx.err() == goro::errc::deadline_exceeded);
        cancel();
    });

    auto [c, cancel] = goro::with_timeout(goro::background(), 1s);
    Context o = goro::with_value(c, k1, std::string("v"));
    cancel();
    REQUIRE(wait_done(o));
    REQUIRE(o.err() == goro::errc::canceled);
}

TEST_CASE("a child's deadline is never later than its parent's", "[context]") {
    auto [parent, cancel] = goro::with_timeout(goro::background(), 1h);
    const auto pd = *parent.deadline();

    auto [later, c1] = goro::with_timeout(parent, 2h);
    REQUIRE(later.deadline() == pd);
    auto [later2, c2] = goro::with_deadline(parent, pd + 1s);
    REQUIRE(later2.deadline() == pd);
    auto [earlier, c3] = goro::with_deadline(parent, pd - 1min);
    REQUIRE(earlier.deadline() == pd - 1min);
    auto [plain, c4] = goro::with_cancel(parent);
    REQUIRE(plain.deadline() == pd);
    REQUIRE(goro::with_value(parent, k1, std::string("x")).deadline() == pd);
    for (auto* c : {&cancel, &c1, &c2, &c3, &c4}) (*c)();

    // The parent's deadline, when it comes, ends a child that asked for a later one.
    auto [short_parent, sp_cancel] = goro::with_timeout(goro::background(), 20ms);
    auto [long_child, lc_cancel] = goro::with_timeout(short_parent, 1h);
    REQUIRE(long_child.deadline() == short_parent.deadline());
    REQUIRE(wait_done(long_child));
    REQUIRE(long_child.err() == goro::errc::deadline_exceeded);
    REQUIRE(short_parent.err() == goro::errc::deadline_exceeded);
    lc_cancel();
    sp_cancel();
}

TEST_CASE("with_value: lookup through chains, shadowing, identity by address", "[context][gotest]") {
    auto check = [](const Context& c, const char* v1, const char* v2, const char* v3) {
        auto eq = [](const std::string* got, const char* want) {
            return want == nullptr ? got == nullptr : got != nullptr && *got == want;
        };
        CHECK(eq(c.value(k1), v1));
        CHECK(eq(c.value(k2), v2));
        CHECK(eq(c.value(k3), v3));
    };
    Context c0 = goro::background();
    check(c0, nullptr, nullptr, nullptr);
    Context c1 = goro::with_value(goro::background(), k1, std::string("c1k1"));
    check(c1, "c1k1", nullptr, nullptr);
    Context c2 = goro::with_value(c1, k2, std::string("c2k2"));
    check(c2, "c1k1", "c2k2", nullptr);
    Context c3 = goro::with_value(c2, k3, std::string("c3k3"));
    check(c3, "c1k1", "c2k2", "c3k3");
    Context c4 = goro::with_value(c3, k1, std::string("c4k1"));  // shadows k1
    check(c4, "c4k1", "c2k2", "c3k3");
    check(c3, "c1k1", "c2k2", "c3k3");  // the parent is unchanged

    // Through cancellable and deadline layers.
    auto [cc, cancel] = goro::with_cancel(c4);
    auto [tc, cancel_t] = goro::with_timeout(cc, 1h);
    check(tc, "c4k1", "c2k2", "c3k3");
    cancel();
    check(tc, "c4k1", "c2k2", "c3k3");  // values outlive cancellation
    cancel_t();

    // Identity is the key object's address, not its label or type name.
    ContextKey<std::string> same_label_a{"same"};
    ContextKey<std::string> same_label_b{"same"};
    Context v = goro::with_value(goro::background(), same_label_a, std::string("a"));
    REQUIRE(v.value(same_label_a) != nullptr);
    REQUIRE(*v.value(same_label_a) == "a");
    REQUIRE(v.value(same_label_b) == nullptr);

    // Keys of different types in one chain.
    static const ContextKey<int> user_id{"user_id"};
    static const ContextKey<std::vector<int>> path{"path"};
    Context w = goro::with_value(goro::with_value(v, user_id, 12345), path, std::vector<int>{1, 2, 3});
    REQUIRE(w.value(user_id) != nullptr);
    REQUIRE(*w.value(user_id) == 12345);
    REQUIRE(w.value(path)->size() == 3);
    REQUIRE(*w.value(same_label_a) == "a");
    REQUIRE(w.value(k1) == nullptr);
    // The pointer stays valid while a context holding the value is alive.
    const int* id = w.value(user_id);
    Context keep = w;
    w = goro::background();
    REQUIRE(*id == 12345);
    REQUIRE(keep.value(user_id) == id);
}

TEST_CASE("cancellation propagates to every descendant, with goroutines waiting on each",
          "[context]") {
    // A tree of depth 4 and fan-out 3, mixing every kind of derived context.
    auto [root, cancel_root] = goro::with_cancel(goro::background());
    std::vector<Context> nodes{root};
    std::vector<goro::CancelFunc> cancels;
    static const ContextKey<int> depth_key{"depth"};
    for (std::size_t i = 0; nodes.size() < 121; ++i) {
        Context parent = nodes[i];
        for (int k = 0; k < 3; ++k) {
            switch ((i + k) % 3) {
                case 0: {
                    auto [c, f] = goro::with_cancel(parent);
                    nodes.push_back(c);
                    cancels.push_back(f);
                    break;
                }
                case 1: {
                    auto [c, f] = goro::with_timeout(parent, 1h);
                    nodes.push_back(c);
                    cancels.push_back(f);
                    break;
                }
                default: nodes.push_back(goro::with_value(parent, depth_key, int(i)));
            }
        }
    }
    std::atomic<int> woke{0}, wrong_err{0};
    goro::WaitGroup wg;
    for (const Context& ctx : nodes) {
        wg.add(1);
        goro::go([&, ctx] {
            goro::select(goro::recv(ctx.done()));
            if (ctx.err() != goro::errc::canceled) ++wrong_err;
            ++woke;
            wg.done();
        });
    }
    goro::sleep_for(5ms);
    REQUIRE(woke == 0);
    cancel_root();
    wg.wait();
    REQUIRE(woke == int(nodes.size()));
    REQUIRE(wrong_err == 0);
    for (auto& f : cancels) f();
}

TEST_CASE("SimultaneousCancels: cancels of a whole tree, in any order, at once", "[context][gotest]") {
    auto [root, cancel] = goro::with_cancel(goro::background());
    std::vector<std::pair<Context, goro::CancelFunc>> m{{root, cancel}};
    for (std::size_t q = 0; m.size() < 100; ++q) {
        Context parent = m[q].first;
        for (int i = 0; i < 4; ++i) m.push_back(goro::with_cancel(parent));
    }
    std::shuffle(m.begin(), m.end(), std::mt19937(42));
    goro::WaitGroup wg;
    wg.add(int(m.size()));
    for (auto& [ctx, c] : m)
        goro::go([&wg, c = c] {
            c();
            wg.done();
        });
    for (auto& [ctx, c] : m) REQUIRE(wait_done(ctx));
    Channel<std::monostate> done;
    goro::go([&wg, done] {
        wg.wait();
        done.close();
    });
    REQUIRE(goro::select(goro::recv(done), goro::recv(goro::after(kLong))) == 0);
}

TEST_CASE("InterlockedCancels: a child cancelled from its parent's done", "[context][gotest]") {
    auto [parent, cancel_parent] = goro::with_cancel(goro::background());
    auto [child, cancel_child] = goro::with_cancel(parent);
    goro::go([parent = parent, cancel_child = cancel_child] {
        parent.done().recv();
        cancel_child();
    });
    cancel_parent();
    REQUIRE(wait_done(child));
}

TEST_CASE("Layers: random stacks of value, cancel and timeout layers", "[context][gotest]") {
    std::mt19937 rng(12345);
    for (bool test_timeout : {false, true}) {
        for (int round = 0; round < 20; ++round) {
            INFO("timeout " << test_timeout << " round " << round);
            std::vector<std::unique_ptr<ContextKey<int>>> keys;
            std::vector<goro::CancelFunc> cancels;
            int timeouts = 0;
            Context ctx = goro::background();
            for (int i = 0; i < 3 || rng() % 10 != 0; ++i) {
                switch (rng() % 3) {
                    case 0:
                        keys.push_back(std::make_unique<ContextKey<int>>("layer"));
                        ctx = goro::with_value(ctx, *keys.back(), int(keys.size()));
                        break;
                    case 1: {
                        auto [c, f] = goro::with_cancel(ctx);
                        ctx = c;
                        cancels.push_back(f);
                        break;
                    }
                    default: {
                        auto [c, f] = goro::with_timeout(ctx, test_timeout ? 20ms : 1h);
                        ctx = c;
                        cancels.push_back(f);
                        ++timeouts;
                    }
                }
            }
            auto check_values = [&] {
                for (std::size_t i = 0; i < keys.size(); ++i) {
                    const int* v = ctx.value(*keys[i]);
                    REQUIRE(v != nullptr);
                    REQUIRE(*v == int(i + 1));
                }
            };
            check_values();
            if (!test_timeout || timeouts == 0) REQUIRE_FALSE(is_done(ctx));
            if (test_timeout && timeouts > 0) {
                REQUIRE(wait_done(ctx));
                REQUIRE(ctx.err() == goro::errc::deadline_exceeded);
            }
            check_values();
            if (!cancels.empty()) {
                cancels[rng() % cancels.size()]();
                REQUIRE(is_done(ctx));
                if (!(test_timeout && timeouts > 0)) REQUIRE(ctx.err() == goro::errc::canceled);
            }
            for (auto& f : cancels) f();
        }
    }
}

TEST_CASE("CancelRemoves: cancelled children are released by their long-lived parent",
          "[context][gotest]") {
    const int n = goro_test::scaled(100000, 1000);
    auto [parent, cancel_parent] = goro::with_cancel(goro::background());
    auto churn = [&parent = parent](int count, bool timeout) {
        for (int i = 0; i < count; ++i) {
            auto [child, cancel] = timeout ? goro::with_timeout(parent, 1h) : goro::with_cancel(parent);
            cancel();
        }
    };
    for (bool timeout : {false, true}) {
        INFO((timeout ? "with_timeout" : "with_cancel") << " children");
        churn(1000, timeout);  // warm up
        long long before = goro_test::alloc_totals().live;
        churn(n, timeout);
        long long grown = goro_test::alloc_totals().live - before;
        INFO(grown << " live allocations more after " << n << " children");
        REQUIRE(grown < 1000);
    }
    REQUIRE_FALSE(is_done(parent));
    cancel_parent();
    REQUIRE(is_done(parent));
}

TEST_CASE("children whose deadline passed are released by their parent too", "[context]") {
    auto [parent, cancel_parent] = goro::with_cancel(goro::background());
    auto expire = [&parent = parent](int count) {
        std::vector<Context> kids;
        for (int i = 0; i < count; ++i) {
            auto [c, cancel] = goro::with_timeout(parent, std::chrono::microseconds(i % 500));
            kids.push_back(c);  // cancel is dropped uncalled: only the deadline ends it
        }
        // Polled rather than wait_done(): its after() timers would stay allocated for seconds.
        for (auto& k : kids) REQUIRE(goro_test::poll_until([&] { return is_done(k); }));
        for (auto& k : kids) REQUIRE(k.err() == goro::errc::deadline_exceeded);
    };
    expire(200);  // warm up
    goro::sleep_for(5ms);
    long long before = goro_test::alloc_totals().live;
    expire(goro_test::scaled(5000, 500));
    goro::sleep_for(5ms);  // timer callbacks that are finishing
    long long grown = goro_test::alloc_totals().live - before;
    INFO(grown << " live allocations more");
    REQUIRE(grown < 500);
    cancel_parent();
}

// ---- Seed patterns ----

TEST_CASE("pattern: worker pool stopped by its context", "[context][pattern]") {
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    Channel<int> jobs(16), results(16);
    goro::WaitGroup workers;
    constexpr int nworkers = 4;
    for (int w = 0; w < nworkers; ++w) {
        workers.add(1);
        goro::go([ctx = ctx, jobs, results, &workers] {
            for (bool more = true; more;) {
                goro::select(
                    goro::recv(jobs,
                               [&](std::optional<int> j) {
                                   if (!j) {
                                       more = false;
                                       return;
                                   }
                                   goro::select(goro::send(results, *j * 2),
                                                goro::recv(ctx.done(), [&] { more = false; }));
                               }),
                    goro::recv(ctx.done(), [&] { more = false; }));
            }
            workers.done();
        });
    }
    // A producer that would go on forever: only the context stops it.
    goro::WaitGroup producer;
    producer.add(1);
    goro::go([ctx = ctx, jobs, &producer] {
        for (int i = 0;; ++i)
            if (goro::select(goro::send(jobs, int(i)), goro::recv(ctx.done())) == 1) break;
        producer.done();
    });
    long long sum = 0;
    for (int i = 0; i < 1000; ++i) sum += *results.recv();
    REQUIRE(sum % 2 == 0);
    REQUIRE(sum >= 2LL * (999 * 1000 / 2));  // at least the 1000 smallest doubled jobs
    cancel();
    workers.wait();
    producer.wait();
    REQUIRE(ctx.err() == goro::errc::canceled);
}

namespace {

// gen() sends nums on its channel until done, then closes it (the pipelines blog post).
Channel<int> gen(const Context& ctx, std::vector<int> nums, goro::WaitGroup& wg) {
    Channel<int> out;
    wg.add(1);
    goro::go([ctx, out, nums = std::move(nums), &wg] {
        for (int n : nums)
            if (goro::select(goro::send(out, int(n)), goro::recv(ctx.done())) == 1) break;
        out.close();
        wg.done();
    });
    return out;
}

Channel<int> sq(const Context& ctx, Channel<int> in, goro::WaitGroup& wg) {
    Channel<int> out;
    wg.add(1);
    goro::go([ctx, in, out, &wg] {
        for (int n : in)
            if (goro::select(goro::send(out, n * n), goro::recv(ctx.done())) == 1) break;
        out.close();
        wg.done();
    });
    return out;
}

Channel<int> merge(const Context& ctx, const std::vector<Channel<int>>& cs, goro::WaitGroup& wg) {
    Channel<int> out;
    auto merging = std::make_shared<goro::WaitGroup>();
    merging->add(int(cs.size()));
    for (const Channel<int>& c : cs) {
        wg.add(1);
        goro::go([ctx, c, out, merging, &wg] {
            for (int n : c)
                if (goro::select(goro::send(out, int(n)), goro::recv(ctx.done())) == 1) break;
            merging->done();
            wg.done();
        });
    }
    wg.add(1);
    goro::go([out, merging, &wg] {
        merging->wait();
        out.close();
        wg.done();
    });
    return out;
}

}  // namespace

TEST_CASE("pattern: pipeline, run to completion and cancelled early", "[context][pattern]") {
    std::vector<int> nums;  // squared twice: n^4 must fit in an int
    for (int i = 1; i <= 150; ++i) nums.push_back(i);
    SECTION("to completion") {
        goro::WaitGroup wg;
        auto [ctx, cancel] = goro::with_cancel(goro::background());
        long long sum = 0;
        for (int v : sq(ctx, sq(ctx, gen(ctx, nums, wg), wg), wg)) sum += v;
        long long want = 0;
        for (long long i = 1; i <= 150; ++i) want += i * i * i * i;
        REQUIRE(sum == want);
        wg.wait();
        cancel();
    }
    SECTION("the consumer takes three values, then cancels: every stage exits") {
        goro::WaitGroup wg;
        auto [ctx, cancel] = goro::with_cancel(goro::background());
        Channel<int> out = sq(ctx, sq(ctx, gen(ctx, nums, wg), wg), wg);
        REQUIRE(out.recv() == 1);
        REQUIRE(out.recv() == 16);
        REQUIRE(out.recv() == 81);
        cancel();
        wg.wait();
        for (int v : out) (void)v;  // closed by its stage
    }
}

TEST_CASE("pattern: fan-out, fan-in", "[context][pattern]") {
    std::vector<int> nums;
    for (int i = 1; i <= 2000; ++i) nums.push_back(i);
    SECTION("every value squared exactly once") {
        goro::WaitGroup wg;
        auto [ctx, cancel] = goro::with_cancel(goro::background());
        Channel<int> in = gen(ctx, nums, wg);
        std::vector<Channel<int>> workers;
        for (int i = 0; i < 4; ++i) workers.push_back(sq(ctx, in, wg));
        long long sum = 0;
        int count = 0;
        for (int v : merge(ctx, workers, wg)) {
            sum += v;
            ++count;
        }
        REQUIRE(count == 2000);
        long long want = 0;
        for (long long i = 1; i <= 2000; ++i) want += i * i;
        REQUIRE(sum == want);
        wg.wait();
        cancel();
    }
    SECTION("a deadline stops every goroutine") {
        goro::WaitGroup wg;
        auto [ctx, cancel] = goro::with_timeout(goro::background(), 20ms);
        Channel<int> in = gen(ctx, nums, wg);
        std::vector<Channel<int>> workers;
        for (int i = 0; i < 4; ++i) workers.push_back(sq(ctx, in, wg));
        Channel<int> out = merge(ctx, workers, wg);
        REQUIRE(out.recv().has_value());  // take one, then stop reading
        REQUIRE(wait_done(ctx));
        wg.wait();  // gen, the four workers, and merge's goroutines all returned
        REQUIRE(ctx.err() == goro::errc::deadline_exceeded);
        cancel();
    }
}

TEST_CASE("pattern: goroutines selecting on ctx.done() stop when an ancestor is cancelled",
          "[context][pattern]") {
    auto [root, cancel_root] = goro::with_cancel(goro::background());
    auto [mid, cancel_mid] = goro::with_timeout(root, 1h);
    static const ContextKey<int> id_key{"id"};
    constexpr int n = 100;
    std::atomic<long long> iterations{0};
    std::atomic<int> stopped{0};
    goro::WaitGroup wg;
    for (int i = 0; i < n; ++i) {
        auto [leaf, cancel_leaf] = goro::with_cancel(goro::with_value(mid, id_key, i));
        wg.add(1);
        goro::go([&, leaf = leaf, cancel_leaf = cancel_leaf] {
            Channel<int> work(1);
            for (;;) {
                work.send(1);
                if (goro::select(goro::recv(leaf.done()), goro::recv(work)) == 0) break;
                ++iterations;
                goro::yield();
            }
            if (leaf.err() == goro::errc::canceled && *leaf.value(id_key) >= 0) ++stopped;
            cancel_leaf();
            wg.done();
        });
    }
    REQUIRE(goro_test::poll_until([&] { return iterations.load() > 10 * n; }));
    cancel_root();
    wg.wait();
    REQUIRE(stopped == n);
    REQUIRE(mid.err() == goro::errc::canceled);
    cancel_mid();
}

// ---- Huge durations (issue 9): now + duration::max() is never, not the past ----

TEST_CASE("with_timeout(duration::max()) and with_deadline(time_point::max()) never fire",
          "[context][huge]") {
    goro_test::on_thread_and_goroutine([] {
        auto [t, cancel_t] = goro::with_timeout(goro::background(), Clock::duration::max());
        auto [d, cancel_d] = goro::with_deadline(goro::background(), Clock::time_point::max());
        REQUIRE(t.deadline() == Clock::time_point::max());
        REQUIRE(d.deadline() == Clock::time_point::max());
        // A child of a "never" parent may still have a deadline of its own.
        auto [child, cancel_child] = goro::with_timeout(t, 20ms);
        REQUIRE(child.deadline() < Clock::time_point::max());
        for (const Context& c : {t, d}) {
            REQUIRE(goro::select(goro::recv(c), goro::recv(goro::after(50ms))) == 1);
            REQUIRE_FALSE(c.err());
        }
        REQUIRE(wait_done(child));
        REQUIRE(child.err() == goro::errc::deadline_exceeded);
        REQUIRE_FALSE(t.err());
        cancel_child();
        cancel_t();
        cancel_d();
        REQUIRE(t.err() == goro::errc::canceled);
        REQUIRE(d.err() == goro::errc::canceled);
    });
}

TEST_CASE("with_timeout(duration::min()) is done at once", "[context][huge]") {
    auto [ctx, cancel] = goro::with_timeout(goro::background(), Clock::duration::min());
    REQUIRE(is_done(ctx));
    REQUIRE(ctx.err() == goro::errc::deadline_exceeded);
    REQUIRE(*ctx.deadline() < Clock::now());
    cancel();
}

// ---- recv(ctx): the select case on done() that makes no handle ----

TEST_CASE("recv(ctx) is ready exactly when ctx.done() is", "[context][recv]") {
    auto is_done_ctx = [](const Context& c) {
        return goro::select(goro::recv(c), goro::default_case()) == 0;
    };
    REQUIRE_FALSE(is_done_ctx(goro::background()));  // nil: never ready
    auto [root, cancel] = goro::with_cancel(goro::background());
    Context layered = goro::with_value(goro::with_value(root, k1, std::string("a")), k2,
                                       std::string("b"));
    REQUIRE_FALSE(is_done_ctx(root));
    REQUIRE_FALSE(is_done_ctx(layered));
    REQUIRE_FALSE(is_done_ctx(goro::with_value(goro::background(), k1, std::string("x"))));

    bool ran = false;
    goro::go([cancel = cancel] {
        goro::sleep_for(10ms);
        cancel();
    });
    // Blocking select: parks on the channel through recv(ctx), and runs its function.
    REQUIRE(goro::select(goro::recv(layered, [&] { ran = true; }),
                         goro::recv(goro::after(kLong))) == 0);
    REQUIRE(ran);
    REQUIRE(is_done_ctx(root));
    REQUIRE(is_done_ctx(layered));
    REQUIRE(layered.err() == goro::errc::canceled);
    std::optional<std::monostate> got{std::monostate{}};
    goro::select(goro::recv(layered, [&](std::optional<std::monostate> v) { got = v; }));
    REQUIRE_FALSE(got.has_value());  // closed, not sent to
}

TEST_CASE("done(), err(), deadline() and value() through many value layers", "[context]") {
    auto [root, cancel] = goro::with_timeout(goro::background(), 1h);
    static const ContextKey<int> depth_key{"depth"};
    Context ctx = goro::with_value(root, k1, std::string("bottom"));
    for (int i = 0; i < 1000; ++i) ctx = goro::with_value(ctx, depth_key, i);
    REQUIRE(ctx.done() == root.done());
    REQUIRE(ctx.deadline() == root.deadline());
    REQUIRE(*ctx.value(depth_key) == 999);
    REQUIRE(*ctx.value(k1) == "bottom");
    REQUIRE(ctx.value(k2) == nullptr);
    REQUIRE_FALSE(ctx.err());
    cancel();
    REQUIRE(is_done(ctx));
    REQUIRE(ctx.err() == goro::errc::canceled);
}
