// tests/stress_test.cpp: scheduler and timer stress. Ports of Go 1.19's TestTimerFairness,
// TestTimerFairness2 and TestPingPongHog (runtime/proc_test.go), plus a storm of timers that are
// stopped and reset while they fire, and close() racing with send, recv and select.
//
// Sizes go through goro_test::scaled(): GORO_TEST_SCALE=20 makes a soak of it. The only timing
// assertions are lower bounds (a timer never fires early), Go's own generous ratio in
// TestPingPongHog, and "finishes within tens of seconds" bounds that turn a hang into a failure.
#include <goro/goro.hpp>

#include <catch2/catch.hpp>

#include "run_util.hpp"
#include "test_util.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using goro::Channel;
using goro::Clock;
using goro::RecvChannel;
using goro_test::scaled;
using goro_test::seconds_since;

namespace {

// Failures collects what goroutines find wrong: an exception escaping a goroutine would end
// the process, and Catch2 must only be called from the test's own thread. The test asserts
// count() == 0 at the end and shows the first message.
class Failures {
public:
    void add(std::string what) {
        if (n_.fetch_add(1, std::memory_order_relaxed) == 0) {
            std::lock_guard<std::mutex> g(mu_);
            first_ = std::move(what);
        }
    }
    int count() const { return n_.load(); }
    std::string first() {
        std::lock_guard<std::mutex> g(mu_);
        return first_;
    }

private:
    std::atomic<int> n_{0};
    std::mutex mu_;
    std::string first_;  // guarded by mu_
};

// hang() ends the process with a message. Used where a goroutine that may still wake up refers
// to the test's frame, so that the test cannot just fail and unwind.
[[noreturn]] void hang(const std::string& what) {
    std::fprintf(stderr, "stress_test: %s: hang\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

// Finished counts down goroutines that reference the test's frame; wait() returns when the
// last one is done, and a hang ends the process.
class Finished {
public:
    explicit Finished(int n) : left_(n) {}
    void done() {
        if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) ch_.close();
    }
    void wait(const char* what, Clock::duration limit = 60s) {
        goro::Timer guard(limit);
        if (goro::select(goro::recv(ch_), goro::recv(guard.c())) == 1)
            hang(std::string(what) + ": " + std::to_string(left_.load()) +
                 " goroutine(s) still running after " +
                 std::to_string(std::chrono::duration_cast<std::chrono::seconds>(limit).count()) +
                 " s");
        guard.stop();
    }

private:
    std::atomic<int> left_;
    Channel<std::monostate> ch_;
};

// send_within() sends v on ch, or gives up after `limit`; true if it sent.
template <class T>
bool send_within(const Channel<T>& ch, T v, Clock::duration limit) {
    goro::Timer guard(limit);
    bool sent = goro::select(goro::send(ch, std::move(v)), goro::recv(guard.c())) == 0;
    guard.stop();
    return sent;
}

// recv_within() receives from ch, or gives up after `limit`; true if a value (or the close)
// came.
template <class T>
bool recv_within(const Channel<T>& ch, Clock::duration limit) {
    goro::Timer guard(limit);
    bool got = goro::select(goro::recv(ch), goro::recv(guard.c())) == 0;
    guard.stop();
    return got;
}

std::uint64_t seed_from(const char* what) {
    std::uint64_t s = std::random_device{}();
    if (const char* env = std::getenv("GORO_TEST_SEED")) s = std::strtoull(env, nullptr, 10);
    std::printf("%s: seed %llu (GORO_TEST_SEED to repeat)\n", what,
                static_cast<unsigned long long>(s));
    return s;
}

}  // namespace

// ---- runtime/proc_test.go: TestTimerFairness ----
//
// Two goroutines keep an unbuffered channel always ready to receive from; the receiving loop
// selects on it and on a 20ms time.After. The timer must still fire and win the select: a
// scheduler that let the busy channel pair monopolise a worker (its timer heap never looked at,
// or the woken receiver never run) would loop forever. Go asserts only that the test ends; a
// 30 s bound turns a hang into a failure. Run on a goroutine (as Go's test body is) and on a
// plain thread, whose timer sits in worker 0's heap while the workers are busy.

TEST_CASE("TestTimerFairness: a timer fires while a channel is always ready",
          "[stress][timer][gotest]") {
    const int rounds = scaled(5, 2);
    goro_test::on_thread_and_goroutine([&] {
        for (int round = 0; round < rounds; ++round) {
            Channel<std::monostate> done;
            Channel<bool> c;
            Finished senders(2);
            for (int i = 0; i < 2; ++i)
                goro::go([&senders, done, c] {
                    for (;;)
                        if (goro::select(goro::send(c, true), goro::recv(done)) == 1) break;
                    senders.done();
                });
            auto start = Clock::now();
            RecvChannel<Clock::time_point> timer = goro::after(20ms);
            long received = 0;
            bool fired = false;
            while (!fired && seconds_since(start) < 30.0)
                goro::select(goro::recv(c, [&] { ++received; }),
                             goro::recv(timer, [&] { fired = true; }));
            done.close();
            senders.wait("TestTimerFairness");
            INFO("round " << round << ": received " << received << " values");
            REQUIRE(fired);
            REQUIRE(Clock::now() - start >= 20ms);  // and not early
            REQUIRE(received > 0);                  // the senders ran too
        }
    });
}

// ---- runtime/proc_test.go: TestTimerFairness2 ----
//
// Two goroutines each loop on a syscall (Go: a zero-byte read(0); here the same call through
// goro::blocking, goro's way to make one) and a select that sends to, or receives from, the
// other one, or takes its own 20ms time.After. Both timers must fire and both goroutines
// finish, although the channel is ready in almost every round.

TEST_CASE("TestTimerFairness2: timers fire while goroutines ping-pong through syscalls",
          "[stress][timer][gotest]") {
    const int rounds = scaled(5, 2);
    for (int round = 0; round < rounds; ++round) {
        Channel<bool> done, c;
        std::atomic<long> loops{0};
        auto start = Clock::now();
        for (int i = 0; i < 2; ++i)
            goro::go([done, c, &loops] {
                RecvChannel<Clock::time_point> timer = goro::after(20ms);
                for (;;) {
                    goro::blocking([] {
                        char buf[1];
                        (void)!::read(0, buf, 0);
                    });
                    loops.fetch_add(1, std::memory_order_relaxed);
                    if (goro::select(goro::send(c, true), goro::recv(c), goro::recv(timer)) == 2) {
                        done.send(true);
                        return;
                    }
                }
            });
        // <-done twice, each within a generous bound (a goroutine that never returns would
        // keep referring to `loops`, so a hang aborts instead of failing).
        for (int i = 0; i < 2; ++i)
            if (!recv_within(done, 30s))
                hang("TestTimerFairness2: a goroutine still loops after 30 s");
        INFO("round " << round << ": " << loops.load() << " loops");
        REQUIRE(Clock::now() - start >= 20ms);
        REQUIRE(loops.load() >= 2);
    }
}

// ---- runtime/proc_test.go: TestPingPongHog ----
//
// On one worker, two pairs of goroutines pass a token back and forth over an unbuffered
// channel: the "hog" pair counts to 1,000,000 on each hand-off, the "light" pair to 1,000. After
// 100ms the counts must be within a factor of 20 of each other (Go's factor since issue 52207),
// which holds only if both pairs get a similar share of the worker. Each hand-off wakes the
// partner into the waker's runnext slot; a scheduler that always runs runnext first lets
// whichever pair holds the worker keep it forever and starves the other (~1000x or infinitely
// apart). Go bounds such a chain: a goroutine run from runnext inherits the current time slice,
// and when the chain has used up its 10ms the next scheduling point goes to the run queue. goro
// has no preemption, but every hand-off here is a scheduling point, so the same fairness needs
// none. The test body runs on a plain thread (Go's runs on a
// goroutine): if one pair starved everyone else on the worker, a goroutine's 100ms sleep could
// be starved too and the test would hang instead of failing.

namespace {

// count_to() adds 1 to *counter `limit` times, as Go's loop does; volatile keeps the compiler
// from folding the loop into one addition, so a hand-off of the hog costs real CPU time.
void count_to(long limit, volatile long* counter) {
    for (long i = 0; i < limit; ++i) *counter = *counter + 1;
}

}  // namespace

TEST_CASE("TestPingPongHog: a CPU-heavy ping-pong pair does not starve a light one",
          "[stress][sched][gotest]") {
    if (goro::sched_seed() != 0) {
        WARN("skipped: deterministic scheduling picks per switch, not by CPU time");
        return;
    }
    goro_test::GomaxprocsGuard procs(1);
    Channel<std::monostate> done;
    Channel<bool> hog_chan, light_chan;
    long hog_count = 0, light_count = 0;  // each written only by its pair, which hands off
    Finished finished(4);

    auto run = [&](long limit, long* counter, Channel<bool> wake) {
        for (bool more = true; more;)
            goro::select(goro::recv(done, [&] { more = false; }),
                         goro::recv(wake, [&] {
                             count_to(limit, counter);
                             wake.send(true);
                         }));
        finished.done();
    };
    // Two co-scheduled hog goroutines, two co-scheduled light ones.
    for (int i = 0; i < 2; ++i) goro::go(run, 1'000'000L, &hog_count, hog_chan);
    for (int i = 0; i < 2; ++i) goro::go(run, 1'000L, &light_count, light_chan);

    // Start both pairs and let them run for a few time slices. The sends and receives are
    // bounded: if one pair starves the other, the starved pair's token may never be taken.
    const bool hog_started = send_within(hog_chan, true, 10s);
    const bool light_started = send_within(light_chan, true, 10s);
    goro::sleep_for(100ms);
    done.close();
    // Once done is closed, every goroutine finishes: the holder of each token that was taken
    // hands it back here, its partner returns.
    if (hog_started && !recv_within(hog_chan, 30s)) hang("TestPingPongHog: hog token not returned");
    if (light_started && !recv_within(light_chan, 30s))
        hang("TestPingPongHog: light token not returned");
    finished.wait("TestPingPongHog");

    INFO("a pair whose first goroutine never ran did not take its token: hog started "
         << hog_started << ", light started " << light_started);
    REQUIRE(hog_started);
    REQUIRE(light_started);
    constexpr long factor = 20;
    INFO("hog_count / light_count = " << hog_count << " / " << light_count << " = "
                                      << double(hog_count) / double(light_count)
                                      << "; want it within [1/" << factor << ", " << factor << "]");
    REQUIRE(hog_count / factor <= light_count);
    REQUIRE(light_count / factor <= hog_count);
}

// ---- timer storm ----
//
// Many goroutines each own a batch of Timers (100,000 in all, every one pending at once) and
// stop and reset them at random while they fire: some right after arming them, so that stop()
// and reset() race with the firing on another worker. Each timer goes through a small state
// machine that knows what every stop() and reset() must return and what the channel must hold:
//   - stop() or reset() returning true means the arming was pending: its value never arrives
//     (the channel is empty then, and stays so);
//   - returning false on an armed short timer means it fired: exactly one value arrives;
//   - a timer armed for an hour is always pending; a stopped or fired one never is;
//   - every value arrives no earlier than its arming's deadline.
// Values of an arming that stop() returned false for may still be on their way (Go 1.19: Stop
// does not wait for a concurrent sendTime), so they are received with a generous bound. Only
// reset on a stopped or drained timer is relied on (Go's documented rule); an armed short timer
// is only ever reset to an hour, which cannot fire before the value of the old arming is read.
// At the end, after every deadline has passed, all channels must be empty.

namespace {

class TimerStormer {
public:
    TimerStormer(int index, std::uint64_t seed, Failures& failures)
        : index_(index), rng_(seed), failures_(failures) {}

    struct Counts {
        long fired = 0, stopped = 0, reset_pending = 0, long_stopped = 0;
        long in_flight = 0;  // stop() or reset() said "fired" before the value was in the channel
    };

    // run() storms through `total` timers, `batch` of them alive at once.
    Counts run(int total, int batch) {
        for (int first = 0; first < total && ok(); first += batch)
            storm(std::min(batch, total - first));
        return counts_;
    }

private:
    enum class State { armed_short, armed_long, stopped, drained };
    struct Slot {
        std::optional<goro::Timer> t;
        State state = State::armed_short;
        Clock::time_point due;  // deadline of the pending short arming
        int id = 0;
    };

    bool ok() const { return failures_.count() == 0; }

    void fail(const Slot& s, const std::string& what) {
        failures_.add("goroutine " + std::to_string(index_) + ", timer " + std::to_string(s.id) +
                      ": " + what);
    }

    Clock::duration short_duration() {
        switch (rng_() % 4) {
            case 0: return 0ns;
            case 1: return std::chrono::microseconds(rng_() % 50);
            case 2: return std::chrono::microseconds(50 + rng_() % 950);
            default: return std::chrono::microseconds(1000 + rng_() % 4000);
        }
    }

    // arm() arms s (new, stopped or drained) for a short duration.
    void arm(Slot& s) {
        Clock::duration d = short_duration();
        s.due = Clock::now() + d;
        max_due_ = std::max(max_due_, s.due);
        if (!s.t) {
            s.t.emplace(d);
        } else if (s.t->reset(d)) {
            fail(s, "reset() of a stopped or drained timer returned true");
        }
        s.state = State::armed_short;
    }

    void expect_empty(const Slot& s, const char* when) {
        if (s.t->c().size() != 0) fail(s, std::string("a value is in the channel ") + when);
    }

    // receive_fired() takes the one value of the short arming that s reported as fired.
    void receive_fired(Slot& s) {
        std::optional<Clock::time_point> v;
        goro::Timer guard(20s);
        goro::select(goro::recv(s.t->c(), [&](std::optional<Clock::time_point> x) { v = x; }),
                     goro::recv(guard.c()));
        guard.stop();
        if (!v) return fail(s, "a fired timer's value did not arrive within 20 s");
        if (*v < s.due) fail(s, "fired before its deadline");
        ++counts_.fired;
        expect_empty(s, "right after receiving its value");
    }

    // step() applies one random operation to s.
    void step(Slot& s) {
        unsigned r = rng_() % 8;
        switch (s.state) {
            case State::armed_short:
                if (r < 4) {  // stop
                    if (s.t->stop()) {
                        ++counts_.stopped;
                        expect_empty(s, "after stop() returned true");
                        s.state = State::stopped;
                    } else {
                        if (s.t->c().size() == 0) ++counts_.in_flight;
                        receive_fired(s);
                        s.state = State::drained;
                    }
                } else if (r < 6) {  // reset to an hour while it may be firing
                    if (s.t->reset(1h)) {
                        ++counts_.reset_pending;
                        expect_empty(s, "after reset() returned true");
                    } else {
                        if (s.t->c().size() == 0) ++counts_.in_flight;
                        receive_fired(s);
                    }
                    s.state = State::armed_long;
                } else {  // wait for it
                    receive_fired(s);
                    s.state = State::drained;
                }
                break;
            case State::armed_long:
                expect_empty(s, "while armed for an hour");
                if (r < 4) {
                    if (!s.t->stop()) fail(s, "stop() of a timer armed for an hour returned false");
                    ++counts_.long_stopped;
                    s.state = State::stopped;
                } else {
                    Clock::duration d = short_duration();
                    s.due = Clock::now() + d;
                    max_due_ = std::max(max_due_, s.due);
                    if (!s.t->reset(d))
                        fail(s, "reset() of a timer armed for an hour returned false");
                    s.state = State::armed_short;
                }
                break;
            case State::stopped:
            case State::drained:
                expect_empty(s, "after stop or fire");
                if (r < 1) {
                    if (s.t->stop()) fail(s, "stop() of a stopped or fired timer returned true");
                } else if (r < 2) {
                    if (s.t->reset(1h))
                        fail(s, "reset() of a stopped or fired timer returned true");
                    s.state = State::armed_long;
                } else {
                    arm(s);
                }
                break;
        }
    }

    void storm(int n) {
        std::vector<Slot> slots(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) {
            slots[i].id = next_id_++;
            arm(slots[i]);
        }
        std::vector<int> order(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) order[i] = i;
        constexpr int rounds = 4;
        for (int round = 0; round < rounds && ok(); ++round) {
            std::shuffle(order.begin(), order.end(), rng_);
            for (int i : order) {
                Slot& s = slots[i];
                step(s);
                // Sometimes act again at once (after a yield, at most): stop and reset race
                // with a timer that is firing right now on another worker.
                while (s.state == State::armed_short && rng_() % 3 == 0) {
                    if (rng_() % 2) goro::yield();
                    step(s);
                }
            }
        }
        // Settle every timer: receive what is armed short, stop what is armed for an hour.
        for (Slot& s : slots) {
            if (s.state == State::armed_short) {
                receive_fired(s);
                s.state = State::drained;
            } else if (s.state == State::armed_long) {
                if (!s.t->stop()) fail(s, "stop() of a timer armed for an hour returned false");
                ++counts_.long_stopped;
                s.state = State::stopped;
            }
        }
        // Nothing may arrive after a successful stop or a second time: once every deadline is
        // past (and a little more), every channel is still empty.
        goro::sleep_until(max_due_ + 20ms);
        for (Slot& s : slots)
            expect_empty(s, "after every deadline passed (a stopped timer fired, or one twice)");
    }

    int index_;
    std::mt19937_64 rng_;
    Failures& failures_;
    Counts counts_;
    Clock::time_point max_due_{};
    int next_id_ = 0;
};

}  // namespace

TEST_CASE("timer storm: 100,000 timers stopped and reset while they fire", "[stress][timer]") {
    const int total = scaled(100'000, 1000);
    const int goroutines = 50;
    const int per = total / goroutines;
    const int batch = std::min(per, 2000);  // at most 100,000 pending at once, even in a soak
    const std::uint64_t seed = seed_from("timer storm");
    Failures failures;
    std::mutex mu;
    TimerStormer::Counts sum;
    Finished finished(goroutines);
    auto start = Clock::now();
    for (int g = 0; g < goroutines; ++g)
        goro::go([&, g] {
            TimerStormer stormer(g, seed + static_cast<std::uint64_t>(g), failures);
            TimerStormer::Counts c = stormer.run(per, batch);
            {
                std::lock_guard<std::mutex> lock(mu);
                sum.fired += c.fired;
                sum.stopped += c.stopped;
                sum.reset_pending += c.reset_pending;
                sum.long_stopped += c.long_stopped;
                sum.in_flight += c.in_flight;
            }
            finished.done();
        });
    finished.wait("timer storm", 300s);
    INFO(failures.count() << " failure(s); first: " << failures.first());
    INFO("fired " << sum.fired << ", stopped while pending " << sum.stopped
                  << ", reset while pending " << sum.reset_pending << ", stopped long "
                  << sum.long_stopped << "; fired but not yet delivered when stop/reset returned "
                  << sum.in_flight << "; in " << seconds_since(start) << " s");
    REQUIRE(failures.count() == 0);
    // Both outcomes of the race were exercised.
    REQUIRE(sum.fired > 0);
    REQUIRE(sum.stopped > 0);
    REQUIRE(sum.reset_pending > 0);
}

// ---- close racing with send, recv and select ----
//
// Each round, on a fresh channel (unbuffered, capacity 1 or capacity 16): three senders (a
// plain send, a select send beside a never-ready case, and a select that sends and receives on
// the same channel), three receivers (plain recv, range-for, select recv) and two closers. A
// closer closes at once, or when the receiver of the n-th value (n random) wakes it, so that
// most closes land in the middle of the traffic, while senders are blocked or about to send and
// values sit in the buffer. Checked:
//   - exactly one close() succeeds, the other throws ChannelClosed;
//   - ChannelClosed on a send and nullopt on a receive happen only once close() was called;
//   - nothing is lost or duplicated: every value whose send returned was received exactly once
//     (buffered ones drained after the close included), and no value whose send threw was;
//   - the channel ends closed and empty;
//   - every goroutine finishes (a hang aborts with a message).

namespace {

struct CloseRound {
    static constexpr int senders = 3;
    static constexpr int per_sender = 64;
    static constexpr int values = senders * per_sender;

    Channel<int> ch;
    Channel<int> never;                                // never ready: a second case for selects
    std::array<Channel<std::monostate>, 2> trigger{};  // wakes closer k
    std::array<long, 2> target{};                      // ... when this many values were received
    Channel<std::monostate> closed_note;               // closed by the first closer to finish
    std::atomic<bool> noted{false};
    std::array<std::atomic<int>, senders> sent{};  // sender s sent values 0..sent[s]-1
    std::array<std::atomic<int>, values> got{};    // times each value was received
    std::atomic<bool> closing{false};              // set just before each close()
    std::atomic<int> closes_ok{0}, closes_failed{0}, bad_values{0}, early_closed{0};
    std::atomic<long> received{0};
    std::atomic<int> after_close{0};  // values received once close() had been called

    CloseRound(std::size_t cap, long target0, long target1)
        : ch(cap),
          trigger{Channel<std::monostate>(1), Channel<std::monostate>(1)},
          target{target0, target1} {}

    void receive(int v) {
        if (v < 0 || v >= values) {
            bad_values.fetch_add(1);
            return;
        }
        bool late = closing.load();
        got[static_cast<std::size_t>(v)].fetch_add(1, std::memory_order_relaxed);
        long n = received.fetch_add(1) + 1;
        if (late) after_close.fetch_add(1, std::memory_order_relaxed);
        for (int k = 0; k < 2; ++k)
            if (n == target[k]) trigger[k].send({});  // capacity 1, sent once: never blocks
    }
    void saw_closed() {
        if (!closing.load()) early_closed.fetch_add(1);
    }
};

// RoundResult is what went wrong in a round ("" if nothing), and how the race went.
struct RoundResult {
    std::string err;
    int interrupted = 0;  // senders that had sent some values but not all when close came
    int after_close = 0;  // values received after close() was called (buffered, or in flight)
};

// run_close_round() runs one round. A target of 0, or beyond the values there are, closes at
// once.
RoundResult run_close_round(std::size_t cap, long target0, long target1) {
    CloseRound r(cap, target0, target1);
    Finished finished(8);
    Channel<int> ch = r.ch, never = r.never;

    // Closers: wait for the trigger (or for the other closer to have closed), then close.
    for (int k = 0; k < 2; ++k)
        goro::go([&r, &finished, ch, k] {
            if (r.target[k] > 0 && r.target[k] <= CloseRound::values)
                goro::select(goro::recv(r.trigger[k]), goro::recv(r.closed_note));
            r.closing.store(true);
            try {
                ch.close();
                r.closes_ok.fetch_add(1);
            } catch (const goro::ChannelClosed&) {
                r.closes_failed.fetch_add(1);
            }
            if (!r.noted.exchange(true)) r.closed_note.close();
            finished.done();
        });

    // Senders: sender s sends s * per_sender + i for i = 0, 1, ... until ChannelClosed.
    auto sender = [&r, &finished, ch, never](int s) {
        for (int i = 0; i < CloseRound::per_sender; ++i) {
            int v = s * CloseRound::per_sender + i;
            try {
                if (s == 0) {
                    ch.send(v);
                } else if (s == 1) {
                    goro::select(goro::send(ch, v), goro::recv(never));
                } else {
                    // Send and receive on the same channel: either may be chosen. A receive
                    // takes someone else's value; then try to send v again.
                    bool receiving = true;
                    while (receiving) {
                        receiving = false;
                        bool got_closed = false;
                        goro::select(goro::send(ch, v), goro::recv(ch, [&](std::optional<int> x) {
                                         if (x) {
                                             r.receive(*x);
                                             receiving = true;
                                         } else {
                                             got_closed = true;
                                         }
                                     }));
                        if (got_closed) {
                            r.saw_closed();
                            finished.done();
                            return;
                        }
                    }
                }
            } catch (const goro::ChannelClosed&) {
                r.saw_closed();
                break;
            }
            r.sent[static_cast<std::size_t>(s)].store(i + 1, std::memory_order_relaxed);
        }
        finished.done();
    };
    for (int s = 0; s < CloseRound::senders; ++s) goro::go(sender, s);

    // Receivers, until the channel is closed and drained.
    goro::go([&r, &finished, ch] {
        while (std::optional<int> v = ch.recv()) r.receive(*v);
        r.saw_closed();
        finished.done();
    });
    goro::go([&r, &finished, ch] {
        for (int v : ch) r.receive(v);
        r.saw_closed();
        finished.done();
    });
    goro::go([&r, &finished, ch, never] {
        for (bool open = true; open;)
            goro::select(goro::recv(ch, [&](std::optional<int> v) {
                             open = v.has_value();
                             if (v) r.receive(*v);
                         }),
                         goro::recv(never));
        r.saw_closed();
        finished.done();
    });

    finished.wait("close racing with send, recv and select");

    std::string err;
    auto add = [&](const std::string& e) {
        if (err.empty()) err = e;
    };
    if (r.closes_ok != 1 || r.closes_failed != 1)
        add("closes: " + std::to_string(r.closes_ok.load()) + " succeeded, " +
            std::to_string(r.closes_failed.load()) + " threw");
    if (r.early_closed)
        add(std::to_string(r.early_closed.load()) +
            " goroutine(s) saw the channel closed before close()");
    if (r.bad_values)
        add(std::to_string(r.bad_values.load()) + " values received that nobody sent");
    long expected = 0;
    RoundResult result;
    result.after_close = r.after_close.load();
    for (int s = 0; s < CloseRound::senders; ++s) {
        int n = r.sent[static_cast<std::size_t>(s)].load();
        expected += n;
        if (n > 0 && n < CloseRound::per_sender) ++result.interrupted;
        for (int i = 0; i < CloseRound::per_sender; ++i) {
            int g = r.got[static_cast<std::size_t>(s * CloseRound::per_sender + i)].load();
            int want = i < n ? 1 : 0;
            if (g != want)
                add("value " + std::to_string(i) + " of sender " + std::to_string(s) +
                    " (whose sends of values 0.." + std::to_string(n - 1) + " returned) received " +
                    std::to_string(g) + " times");
        }
    }
    if (r.received != expected)
        add("received " + std::to_string(r.received.load()) + " values, sent " +
            std::to_string(expected));
    // The channel is closed and drained now.
    if (ch.size() != 0) add("values left in the channel after every receiver finished");
    if (ch.recv().has_value()) add("recv() on the closed, drained channel returned a value");
    try {
        ch.send(-1);
        add("send() on the closed channel did not throw");
    } catch (const goro::ChannelClosed&) {
    }
    if (!err.empty())
        result.err = "capacity " + std::to_string(cap) + ", close after " +
                     std::to_string(target0) + " / " + std::to_string(target1) + " values: " + err;
    return result;
}

}  // namespace

TEST_CASE("close racing with send, recv and select: nothing lost, duplicated or hung",
          "[stress][chan][select]") {
    const int rounds = scaled(5000, 30);
    const std::uint64_t seed = seed_from("close race");
    std::mt19937_64 rng(seed);
    // Targets 1..values close mid-traffic; 0 and a little beyond close at once.
    std::uniform_int_distribution<long> target(0, CloseRound::values + 8);
    long failures = 0;
    std::string first;
    for (std::size_t cap : {std::size_t(0), std::size_t(1), std::size_t(16)}) {
        long interrupted = 0, after_close = 0;
        for (int i = 0; i < rounds; ++i) {
            RoundResult res = run_close_round(cap, target(rng), target(rng));
            if (!res.err.empty() && failures++ == 0)
                first = "round " + std::to_string(i) + ": " + res.err;
            interrupted += res.interrupted > 0;
            after_close += res.after_close > 0;
        }
        // The race itself was exercised, not only closes before or after the traffic.
        INFO("capacity " << cap << ": close interrupted a sender in " << interrupted << " of "
                         << rounds << " rounds; values were received after close() in "
                         << after_close);
        CHECK(interrupted > 0);
        if (cap > 0) CHECK(after_close > 0);
    }
    INFO(failures << " failed round(s); first: " << first);
    REQUIRE(failures == 0);
}
